"""Coverage-guided vs blind synthetic campaigns: ONNX coverage after N models, cost, findings.

Two campaigns of N cases each (``--count``, default 200) of one synthetic source through one
converter with 2 workers: the source's ordinary case ids (*unguided*) and the ids chosen by
`opseq.sources.synthetic.guided` (*guided*, ``CampaignConfig.guided``), each into its own corpus
directory (``--out``, default ``~/.cache/opseq/bench/guided/<source>-<converter>-<arm>``;
resumable: a rerun runs only the cases not yet recorded, and wall times add up over runs in
``bench-wall.json``). Then, on the structure-only converted models under each corpus's
``models/``, in case order:

- coverage after N models: ops of the op space and type-feasible bigrams
  (`opseq.coverage.corpus_coverage`), distinct versioned ops and finer labels (op + input
  dtypes, ranks, attribute values, `opseq.coverage.profile`), and the source-level items the
  guidance steers by (`opseq.sources.synthetic.guided.items`, on the source graphs);
- models per minute and bigrams gained per minute of campaign wall time (planning included);
- the guidance overhead per case (building and scoring candidates, from ``guidance.json``) as a
  ratio to an unguided case's share of wall time;
- semantic cases (calibrated verdict) and their distinct op signatures: the sorted op multiset of
  each semantic model's ONNX graph, a proxy for distinct failure causes;
- the coverage-vs-models curve at N/4, N/2, 3N/4 and N;

and COMET's published layer-sequence coverage beside it.

    python bench/guided_bench.py [--count 200] [--source synthetic-torch]
        [--converter torch.onnx-torchscript] [--out DIR] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from opseq.corpus import ManifestRow, read_manifest
from opseq.coverage.corpus_coverage import corpus_coverage
from opseq.coverage.index import IndexedModel
from opseq.coverage.models import load_model_under_test
from opseq.coverage.profile import FINER_KINDS
from opseq.difftest.campaign import (
    GUIDANCE_FILE,
    CampaignConfig,
    check_campaign,
    iter_campaign,
    plan_campaign,
)
from opseq.sources import get_source
from opseq.sources.synthetic.guided import GuidanceState, guided_case_ids

ARMS = ("unguided", "guided")
WALL_FILE = "bench-wall.json"
COMET = (
    "COMET (Li et al., ICSE 2023) reports layer-sequence coverage of 39.0% for COMET and 15.6% "
    "for the best earlier tool. Its metric counts Keras layer pairs over the pairs its layer "
    "constraints allow; ours counts ONNX op bigrams of the converted models over the pairs "
    "onnx's schemas make type-feasible. Both are distinct adjacent pairs over a feasible space, "
    "so the gain from guidance is comparable in kind; the percentages are not."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Point:
    """Coverage after the first ``cases`` cases of one arm."""

    cases: int
    models: int
    ops: tuple[int, int]
    bigrams: tuple[int, int]
    versioned_ops: int
    finer: dict[str, int]
    source_items: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Arm:
    """One campaign, measured."""

    name: str
    cases: int
    wall_s: float
    planning_s: float
    guidance: dict | None
    points: tuple[Point, ...]
    semantic: int
    signatures: int

    @property
    def final(self) -> Point:
        """Coverage after all the cases."""
        return self.points[-1]


def arm_config(args: argparse.Namespace, arm: str) -> CampaignConfig:
    default = Path.home() / ".cache" / "opseq" / "bench" / "guided"
    out = (args.out or default) / f"{args.source}-{args.converter}-{arm}"
    return CampaignConfig(
        out_dir=out,
        source=args.source,
        converter=args.converter,
        count=args.count,
        seed=args.seed,
        workers=2,
        guided=arm == "guided",
    )


def run_arm(config: CampaignConfig) -> tuple[float, float]:
    """Run what is left of a campaign; return its wall and planning seconds over all runs."""
    check_campaign(config)
    start = time.perf_counter()
    tasks, skipped = plan_campaign(config)
    planned = time.perf_counter() - start
    name = config.out_dir.name
    print(
        f"{name}: {len(tasks)} to run, {skipped} recorded, {planned:.1f} s planning",
        file=sys.stderr,
    )
    wall_path = config.out_dir / WALL_FILE
    spent = json.loads(wall_path.read_text()) if wall_path.exists() else {}
    wall, planning = spent.get("seconds", 0.0), spent.get("planning_s", 0.0)
    if not tasks:  # a finished arm rerun adds nothing
        return wall, planning
    try:
        for done, row in enumerate(iter_campaign(config, tasks), start=1):
            if done % 25 == 0 or done == len(tasks):
                print(f"  {name}: {done}/{len(tasks)} ({row.outcome.value})", file=sys.stderr)
    finally:  # an interrupted run's time counts too: the rerun resumes it
        wall += time.perf_counter() - start
        planning += planned
        wall_path.write_text(json.dumps({"seconds": wall, "planning_s": planning}) + "\n")
    return wall, planning


def case_order(config: CampaignConfig) -> list[str]:
    source = get_source(config.source)
    if not config.guided:
        return list(source.case_ids(count=config.count, seed=config.seed))
    state = config.out_dir / GUIDANCE_FILE
    return guided_case_ids(source, count=config.count, seed=config.seed, state_path=state)


def measure_arm(name: str, config: CampaignConfig, wall_s: float, planning_s: float) -> Arm:
    order = case_order(config)
    by_case = {row.extra.get("case"): row for row in read_manifest(config.out_dir)}
    rows = [by_case.get(case_id) for case_id in order]
    loaded = [_load(config.out_dir, row) for row in rows]
    source = get_source(config.source)
    graphs = [source.graph(case_id) for case_id in order]
    marks = sorted({max(1, round(len(order) * q / 4)) for q in (1, 2, 3, 4)})
    points = tuple(_point(k, loaded[:k], graphs[:k]) for k in marks)
    semantic = [m for row, m in zip(rows, loaded, strict=True) if _is_semantic(row)]
    guidance = None
    if config.guided:
        guidance = json.loads((config.out_dir / GUIDANCE_FILE).read_text())
    return Arm(
        name=name,
        cases=len(order),
        wall_s=wall_s,
        planning_s=planning_s,
        guidance=guidance,
        points=points,
        semantic=len(semantic),
        signatures=len({m[1] for m in semantic if m is not None}),
    )


def _is_semantic(row: ManifestRow | None) -> bool:
    return row is not None and row.extra.get("verdict") == "semantic"


def _load(out_dir: Path, row: ManifestRow | None) -> tuple[IndexedModel, tuple] | None:
    """The model of a row as an indexed model, with its sorted op multiset."""
    if row is None or row.model is None:
        return None
    profile = load_model_under_test(out_dir / row.model, digest=False).profile
    return IndexedModel.of(profile), tuple(sorted(profile.items["ops"].items()))


def _point(cases: int, loaded: list, graphs: list) -> Point:
    models = [m[0] for m in loaded if m is not None]
    coverage = corpus_coverage(models, name=f"first {cases}")
    used, feasible = coverage.ops.used, coverage.sequences.feasible
    return Point(
        cases=cases,
        models=len(models),
        ops=(used.covered, used.total),
        bigrams=(feasible.covered, feasible.total),
        versioned_ops=len(set().union(*(m.items["versioned_ops"] for m in models))),
        finer={k: len(set().union(*(m.items[k] for m in models))) for k in FINER_KINDS},
        source_items=GuidanceState.of(graphs).distinct(),
    )


# --- the table --------------------------------------------------------------------------------


def _share(pair: tuple[int, int]) -> str:
    covered, total = pair
    return f"{covered:,}/{total:,} ({100 * covered / total:.1f}%)" if total else f"{covered:,}/0"


def format_table(arms: list[Arm]) -> str:
    unguided = next(a for a in arms if a.name == "unguided")
    rows = [
        ("cases", [f"{a.cases:,}" for a in arms]),
        ("converted models", [f"{a.final.models:,}" for a in arms]),
        ("wall time (min)", [f"{a.wall_s / 60:.1f}" for a in arms]),
        ("of which planning (s)", [f"{a.planning_s:.1f}" for a in arms]),
        ("ops, of the op space", [_share(a.final.ops) for a in arms]),
        ("distinct versioned ops", [f"{a.final.versioned_ops:,}" for a in arms]),
        ("**bigrams, of type-feasible**", [_share(a.final.bigrams) for a in arms]),
        *(
            (f"finer labels: {kind}", [f"{a.final.finer[kind]:,}" for a in arms])
            for kind in FINER_KINDS
        ),
        ("source-level items", [f"{a.final.source_items:,}" for a in arms]),
        ("models per minute", [f"{a.final.models / (a.wall_s / 60):.1f}" for a in arms]),
        (
            "bigrams gained per minute",
            [f"{a.final.bigrams[0] / (a.wall_s / 60):.1f}" for a in arms],
        ),
        ("guidance per case (s)", [_guidance(a, unguided)[0] for a in arms]),
        ("guidance / unguided case wall time", [_guidance(a, unguided)[1] for a in arms]),
        ("semantic cases", [f"{a.semantic}" for a in arms]),
        ("distinct semantic op multisets (proxy)", [f"{a.signatures}" for a in arms]),
    ]
    lines = ["| | " + " | ".join(a.name for a in arms) + " |", "|---|" + "---:|" * len(arms)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines)


def _guidance(arm: Arm, unguided: Arm) -> tuple[str, str]:
    if arm.guidance is None:
        return "-", "-"
    spent = (arm.guidance["build_s"] + arm.guidance["score_s"]) / arm.cases
    return f"{spent:.3f}", f"{spent / (unguided.wall_s / unguided.cases):.1%}"


def format_curve(arms: list[Arm]) -> str:
    header = "| first k cases | " + " | ".join(f"{a.name} bigrams | {a.name} ops" for a in arms)
    lines = [header + " |", "|---:|" + "---:|---:|" * len(arms)]
    for i, point in enumerate(arms[0].points):
        cells = [f"{_share(a.points[i].bigrams)} | {a.points[i].ops[0]}" for a in arms]
        lines.append(f"| {point.cases} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--source", default="synthetic-torch")
    parser.add_argument("--converter", default="torch.onnx-torchscript")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    arms = []
    for arm in ARMS:
        config = arm_config(args, arm)
        wall, planning = run_arm(config)
        start = time.perf_counter()
        arms.append(measure_arm(arm, config, wall, planning))
        print(f"{arm}: measured in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(f"{args.source} through {args.converter}, N = {args.count}, seed {args.seed}\n")
    print(format_table(arms))
    print(f"\nCoverage vs models\n\n{format_curve(arms)}\n\n{COMET}")
    guided = next(a for a in arms if a.guidance is not None).guidance
    built = guided["graphs_built"]
    print(
        f"\nGuidance built {built:,} candidate graphs in {guided['build_s']:.1f} s "
        f"({1000 * guided['build_s'] / built:.1f} ms each) and scored them in "
        f"{guided['score_s']:.1f} s."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
