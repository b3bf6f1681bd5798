"""Statistical hypothesis tests relating operator sequences to conversion mismatches.

Data flow, one module per stage:

* `hypotheses.features`: corpus manifest + models -> `StructureTable` (node counts, sparse
  n-gram presence, raw differences, source model of each row);
* `hypotheses.labels`: raw differences -> mismatch labels under a rule (the tests take any
  boolean label array plus an optional exclusion mask);
* `hypotheses.stats`: vectorised tests (Fisher, odds ratios, BH, size model, score tests,
  Mantel-Haenszel); `hypotheses.exact`: exact stratified permutation distributions, their
  minimum p-values and minimum detectable odds ratios; `hypotheses.clusters`: source models as
  units, their strata and the exact size-adjusted test; `hypotheses.multiplicity`: Tarone's rule
  before Benjamini-Hochberg; `hypotheses.power`: power summaries and effective units;
* `hypotheses.association`: one family of per-feature tests (score or exact, Tarone, BH, power),
  shared by `hypotheses.operators` and `hypotheses.sequences` (+ `hypotheses.minimal`: n-grams
  given their significant parts);
* `hypotheses.twins` (discordant twin pairs as matched pairs), `hypotheses.prediction`,
  `hypotheses.table12`, `hypotheses.tolerance`: the other hypotheses;
* `hypotheses.report`: all of them on one corpus, with `hypotheses.verdicts` (yes / no /
  undetermined, "no" only with power) and the JSON contract;
* `hypotheses.render_markdown`, `hypotheses.render_html` (+ `hypotheses.html_parts`,
  `hypotheses.html_power`, `hypotheses.figures`): reports;
* `hypotheses.evolution` (+ `hypotheses.onnx_releases`): the opset-evolution hypothesis.

`opseq` never imports this package except lazily in ``opseq hypotheses``.
"""
