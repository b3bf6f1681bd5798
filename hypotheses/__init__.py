"""Statistical hypothesis tests relating operator sequences to conversion mismatches.

Data flow, one module per stage:

* `hypotheses.features`: corpus manifest + models -> `StructureTable` (node counts, sparse
  n-gram presence, raw differences, source model of each row);
* `hypotheses.labels`: raw differences -> mismatch labels under a tolerance rule;
* `hypotheses.stats`: vectorised tests (Fisher, odds ratios, BH, size model, score tests,
  Mantel-Haenszel), shared by `hypotheses.association`;
* `hypotheses.operators`, `hypotheses.sequences`, `hypotheses.prediction`,
  `hypotheses.table12`, `hypotheses.tolerance`: the hypotheses;
* `hypotheses.report`: all of them on one corpus, with verdicts and the JSON contract;
* `hypotheses.render_markdown`, `hypotheses.render_html` (+ `hypotheses.figures`): reports;
* `hypotheses.evolution` (+ `hypotheses.onnx_releases`): the opset-evolution hypothesis.

`opseq` never imports this package except lazily in ``opseq hypotheses``.
"""
