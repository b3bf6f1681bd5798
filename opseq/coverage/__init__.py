"""Architectural coverage of models against reference corpora, and the deployment gate.

A *reference* is a named set of models (onnx's own node tests, the backend models it ships, the
``ok`` models of a corpus, any directory or manifest) whose index of labels, versioned ops,
n-grams and finer labels is cached on disk by content fingerprint. Coverage compares one model,
or a corpus, with a reference; the gate turns coverage and the checks that are not coverage
(valid, runnable, behaves, risky) into criteria with thresholds, a policy and an exit code;
rendering draws where the uncovered or risky sequences sit.
"""
