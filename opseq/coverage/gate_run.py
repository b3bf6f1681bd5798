"""One gate run: read the policy, the model, its baseline and the references; decide.

Order matters for untrusted input: everything that can be refused cheaply (the policy, the
options, the model, the baseline, the knowledge base) is read before the references are built,
so a bad input costs no index build.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Iterable
from pathlib import Path

from opseq.coverage.criteria import Criterion, Offender
from opseq.coverage.gate import GateInputs, coverage_criteria, gate_passed
from opseq.coverage.gate_formats import GateReport
from opseq.coverage.knowledge import KnowledgeBase, default_knowledge, load_knowledge
from opseq.coverage.model_coverage import model_coverage
from opseq.coverage.models import LoadedModel, load_model_under_test
from opseq.coverage.policy import GatePolicy, policy_from_args
from opseq.errors import OpseqError
from opseq.limits import Limits
from opseq.ngrams import Ngram

__all__ = ["run_gate"]

logger = logging.getLogger(__name__)


def run_gate(args: argparse.Namespace, *, limits: Limits) -> GateReport:
    """Run the gate the parsed command line describes."""
    from opseq.cli._references import references_from_args

    policy = policy_from_args(args, model=args.model)
    loaded = load_model_under_test(args.model, limits=limits, digest=False)
    baseline = None if args.baseline is None else _load_baseline(args.baseline, limits)
    wanted = policy.max_risky is not None or args.knowledge is not None
    knowledge = _knowledge(args, policy) if wanted else None  # 0.2 s to read the shipped one
    texts = args.reference if args.reference else (list(policy.references) or None)
    reference = references_from_args(args, texts)
    coverage = model_coverage(loaded.profile, reference)
    baseline_pair = None
    if baseline is not None:
        baseline_pair = (baseline.profile, model_coverage(baseline.profile, reference))
    allowed_ops = {e.item[0]: e.reason for e in policy.allow if e.kind == "op"}
    allowed_ngrams = {tuple(e.item): e.reason for e in policy.allow if e.kind == "ngram"}
    inputs = GateInputs(
        coverage=coverage,
        profile=loaded.profile,
        ngram_nodes=lambda ngrams: _ngram_nodes(loaded, ngrams),
        allowed_ops=allowed_ops,
        allowed_ngrams=allowed_ngrams,
        baseline=baseline_pair,
        knowledge=knowledge,
    )
    criteria = _checks(loaded, policy, args)
    criteria += coverage_criteria(
        inputs,
        min_op_coverage=policy.min_op_coverage,
        min_versioned_op_coverage=policy.min_versioned_op_coverage,
        min_ngram_coverage=policy.min_ngram_coverage,
        n=policy.n,
        max_novel=policy.max_novel,
        max_risky=policy.max_risky,
    )
    picture = _picture(args, loaded, coverage.ngrams[policy.n].uncovered)
    return GateReport(
        model=str(args.model),
        passed=gate_passed(criteria, policy.require),
        criteria=tuple(criteria),
        references=tuple(reference.to_dicts()),
        baseline=None if args.baseline is None else str(args.baseline),
        policy_source=policy.source,
        picture=picture,
    )


def _load_baseline(path: Path, limits: Limits) -> LoadedModel:
    try:
        return load_model_under_test(path, limits=limits, digest=False)
    except OpseqError as e:
        raise type(e)(f"baseline: {e}") from e


def _knowledge(args: argparse.Namespace, policy: GatePolicy) -> KnowledgeBase | None:
    path = args.knowledge or (Path(policy.knowledge) if policy.knowledge else None)
    if path is None:
        path = default_knowledge()
    return None if path is None else load_knowledge(path)


def _checks(loaded: LoadedModel, policy: GatePolicy, args: argparse.Namespace) -> list[Criterion]:
    from opseq.coverage.checks import check_runnable, check_valid
    from opseq.strip import is_structure_only, strip_weights

    # The checks judge structure: weights only cost serialisation (seconds on a 400 MB model),
    # and a structure-only model is checked with its stripped tensors as typed inputs.
    structure = strip_weights(loaded.model)
    criteria = []
    if "valid" in policy.require:
        valid = check_valid(structure)
        if valid.note and not is_structure_only(loaded.model):  # the stripping was ours
            note = valid.note.replace("tensors without data were", "weight tensors were")
            valid = dataclasses.replace(valid, note=note)
        criteria.append(valid)
    if "runnable" in policy.require:
        criteria.append(check_runnable(structure))
    if args.verify is not None or "behaves" in policy.require:
        criteria.append(_behaves(args))
    return criteria


def _behaves(args: argparse.Namespace) -> Criterion:
    """The verdict of ``opseq verify MODEL --source SPEC`` as a criterion."""
    if args.verify is None:
        return Criterion(
            name="behaves",
            passed=None,
            note="required by the policy, but no source model was given (--verify SPEC)",
        )
    from opseq.cli import build_parser
    from opseq.cli.verify import prepare_verification, run_verification

    verify_args = build_parser().parse_args(
        ["verify", str(args.model), "--source", args.verify, "--no-repro"]
    )
    report, _ = run_verification(verify_args, *prepare_verification(verify_args))
    verdict = report.verdict.value
    offenders = ()
    if not report.passed:
        offenders = tuple(
            Offender(item=str(output.name), detail=f"verdict {output.verdict.value}")
            for output in report.outputs
            if output.verdict.value == "semantic"
        ) or (Offender(item=str(args.model), detail=f"verdict {verdict}"),)
    return Criterion(
        name="behaves",
        passed=report.passed,
        offenders=offenders,
        note=f"opseq verify against {args.verify}: {verdict}",
    )


def _ngram_nodes(loaded: LoadedModel, ngrams: Iterable[Ngram]) -> dict[Ngram, tuple[str, ...]]:
    from opseq.coverage.occurrences import ngram_occurrences, node_names

    found = ngram_occurrences(loaded.graph, list(ngrams), limit=3)
    return {
        ngram: tuple(
            dict.fromkeys(name for path in paths for name in node_names(loaded.graph, path))
        )
        for ngram, paths in found.items()
    }


def _picture(args: argparse.Namespace, loaded: LoadedModel, uncovered) -> str | None:
    if args.picture is None:
        return None
    from opseq.coverage.render import write_picture

    return write_picture(loaded.graph, {"uncovered": tuple(uncovered)}, args.picture)
