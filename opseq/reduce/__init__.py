"""Reduction of semantic cases to minimal, deduplicated, replayable reproducers (findings).

One module per stage:

- `opseq.reduce.replay`: rebuild a manifest row's case and judge it again under its own oracle;
- `opseq.reduce.shrink`: delta debugging of synthetic graphs while the inconsistency persists;
- `opseq.reduce.signature`: what makes two reproducers one finding;
- `opseq.reduce.recipe`: serialised minimal graphs and source cases, to rebuild a reproducer;
- `opseq.reduce.bundle` and `opseq.reduce.scripts`: a reproducer's files and ``reproduce.py``;
- `opseq.reduce.finding`: ``finding.json`` and the finding directories;
- `opseq.reduce.reducer`: a corpus's semantic rows, each in an isolated worker, into findings;
- `opseq.reduce.ledger`: the table of a findings directory and its replay under new versions.

Importing this package imports no framework.
"""
