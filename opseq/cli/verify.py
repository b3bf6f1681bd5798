"""Verify that an ONNX export computes what its source model computes (calibrated in float64).

Runs the source model (torch or Keras) in float32 and in float64, and the ONNX model in ONNX
Runtime (all optimisations, one thread), on the same input sets, and judges every output with
the campaign oracle's float64-calibrated rule: ok, numerical (less accurate than the framework,
within what reordering float32 arithmetic does), unstable (the inputs are ill-conditioned for the
model: nothing is proven) or semantic (it computes something else). Exits 0 when the model
passes (ok, numerical; unstable with a warning), 1 for a semantic inconsistency, with a repro
bundle in ONNX's test_data_set_0 layout, and 2 for unusable input.

With --data x and labels y, --attack fgsm|pgd --eps E crafts L-inf adversarial samples on the
source model (torch autograd, or tf.GradientTape for Keras), classifies them on both sides and
answers "is the converted model less robust than the original?" with an exact McNemar test on
the paired per-sample correctness (yes / no / undetermined; it informs, like the task-level
checks, and leaves the exit code to the calibrated verdict).

--source is package.module:factory, path/to/file.py:factory (a zero-argument callable returning
the model, or (model, example_inputs), or (model, [InputSpec, ...])) or a saved .keras file.

Example:
  python corpus/examples/verify_example.py tiny_cnn.onnx
  opseq verify tiny_cnn.onnx --source corpus/examples/verify_example.py:tiny_cnn
  python corpus/examples/verify_example.py tiny_cnn_bug.onnx --bug
  opseq verify tiny_cnn_bug.onnx --source corpus/examples/verify_example.py:tiny_cnn --format json
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

from opseq.cli._common import (
    ExitCode,
    add_limit_args,
    add_output_args,
    add_rule_args,
    add_verbosity_args,
    limits_from_args,
    open_output,
    refuse_overwriting_inputs,
    rule_from_args,
    whole_number,
)
from opseq.errors import ConfigError
from opseq.sources.base import INPUT_STRATEGIES

__all__ = ["prepare_verification", "register", "run", "run_verification"]

logger = logging.getLogger(__name__)

_DEFAULT_SETS = 10
# Mirrors opseq.verify.attack, which the parser must not import (it imports no framework, but
# keeps `opseq --help` from loading the verify package).
METHODS = ("fgsm", "pgd")
DEFAULT_PGD_STEPS = 10
# Files that hold a model without the gradients an attack needs (as opseq runs them).
_NO_GRADIENTS = {
    ".onnx": "an ONNX model",
    ".ort": "an ONNX Runtime model",
    ".tflite": "a TensorFlow Lite model",
    ".pb": "a frozen TensorFlow graph",
    ".mlmodel": "a Core ML model",
    ".mlpackage": "a Core ML model",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``verify`` subcommand."""
    parser = subparsers.add_parser(
        "verify",
        help=__doc__.splitlines()[0],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="the ONNX export (.onnx)")
    parser.add_argument(
        "--source",
        required=True,
        metavar="SPEC",
        help="the source model: package.module:factory, path/to/file.py:factory or model.keras",
    )
    group = parser.add_argument_group("input sets")
    group.add_argument(
        "--inputs",
        type=Path,
        metavar="FILE.npz",
        help="given inputs, keyed by ONNX input name in the source model's order; an array of one "
        "more dimension than the input holds several sets along its first axis",
    )
    group.add_argument(
        "--seed", type=int, metavar="S", help="seed of the drawn input sets (default: 0)"
    )
    group.add_argument(
        "--sets",
        type=whole_number(1),
        metavar="K",
        help=f"drawn input sets (default: {_DEFAULT_SETS})",
    )
    group.add_argument(
        "--input-strategy",
        choices=INPUT_STRATEGIES,
        metavar="NAME",
        help="how drawn sets are drawn: normal (seeded normals) or edge (set 0 normal, the "
        "others mix in +-0, subnormals, +-inf, NaN, .5 ties, duplicated extremes and values "
        "near the dtype limits) (default: normal)",
    )
    task = parser.add_argument_group("task-level checks")
    task.add_argument(
        "--data",
        type=Path,
        metavar="FILE.npz",
        help="samples 'x' (and labels 'y'): top-1/top-k agreement, and accuracy with labels",
    )
    task.add_argument(
        "--top-k", type=whole_number(1), default=5, metavar="K", help="k of top-k (default: 5)"
    )
    task.add_argument(
        "--batch-size",
        type=whole_number(1),
        metavar="N",
        help="samples per batch (default: 64, or the model's fixed batch size)",
    )
    attack = parser.add_argument_group(
        "robustness (with --data holding labels 'y'; informs, like the task-level checks)"
    )
    attack.add_argument(
        "--attack",
        choices=METHODS,
        metavar="NAME",
        help="craft L-inf adversarial samples of --data on the source model (fgsm or pgd), "
        "classify them on both sides, and test whether the export is less robust (exact "
        "McNemar)",
    )
    attack.add_argument(
        "--eps",
        type=float,
        metavar="E",
        help="the L-inf radius, in the units of 'x' (0 < E <= max(x) - min(x))",
    )
    attack.add_argument(
        "--steps",
        type=whole_number(1),
        metavar="S",
        help=f"PGD's steps (default: {DEFAULT_PGD_STEPS}; an error with fgsm)",
    )
    attack.add_argument(
        "--step-size",
        type=float,
        metavar="A",
        help="PGD's step (default: 2.5 * E / S; an error with fgsm)",
    )
    attack.add_argument(
        "--random-start",
        action="store_true",
        help="PGD starts at a uniform draw in the eps-ball, seeded by --attack-seed",
    )
    attack.add_argument(
        "--attack-seed", type=int, metavar="S", help="seed of PGD's random start (default: 0)"
    )
    repro = parser.add_argument_group("repro bundle (on a semantic verdict)")
    repro.add_argument(
        "--repro",
        type=Path,
        metavar="DIR",
        help="where to write it (default: opseq-repro-<model stem>/ beside -o, else in the "
        "current directory)",
    )
    repro.add_argument("--no-repro", action="store_true", help="write no repro bundle")
    repro.add_argument(
        "--force", action="store_true", help="replace an earlier bundle in the same place"
    )
    add_rule_args(parser, fixed=False)
    add_limit_args(parser, ngrams=False)
    add_output_args(parser, formats=("text", "json", "junit"))
    add_verbosity_args(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    """Verify the model named by `args`; see the module docstring."""
    from opseq.verify.source import spec_paths

    read = [args.model, *spec_paths(args.source)]
    read += [p for p in (args.inputs, args.data) if p is not None]
    refuse_overwriting_inputs(args.output, read)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before a factory imports TensorFlow
    prepared = prepare_verification(args)
    report, evidence = run_verification(args, *prepared)
    if not report.passed and not args.no_repro:
        report = _write_bundle(args, report, evidence, prepared[0], prepared[1])
    from opseq.verify.render import render

    text = render(report, args.format)
    with open_output(args.output) as out:
        out.write(text)
    _warn(report)
    return ExitCode.OK if report.passed else ExitCode.CHECK_FAILED


def prepare_verification(args: argparse.Namespace):
    """Everything that can be checked before the source model is imported."""
    from opseq.errors import UnsupportedModelError
    from opseq.loader import load_model
    from opseq.strip import is_structure_only
    from opseq.verify.external import check_external_data
    from opseq.verify.inputs import check_feeds, declared_inputs, plan_from_npz, read_npz
    from opseq.verify.task import load_task_data

    _check_attack_args(args)
    model = load_model(args.model, limits=limits_from_args(args))
    if is_structure_only(model):
        raise UnsupportedModelError(
            f"{args.model}: structure-only model (weights stripped by opseq): it cannot run"
        )
    external = check_external_data(model, args.model)
    declared = declared_inputs(model)
    given = None
    if args.inputs is not None:
        arrays = read_npz(args.inputs, flag="--inputs")
        given = plan_from_npz(arrays, declared, path=str(args.inputs))
        check_feeds(given, declared)
        if args.sets is not None or args.seed is not None or args.input_strategy is not None:
            logger.warning(
                "--sets, --seed and --input-strategy are ignored: --inputs gives the input sets"
            )
    task_data = None
    if args.data is not None:
        task_data = load_task_data(args.data, declared, batch_size=args.batch_size)
    _attack_spec(args, task_data)  # refuses a bad --eps before the source model is imported
    return model, external, declared, given, task_data


def _check_attack_args(args: argparse.Namespace) -> None:
    """Refuse attack options that cannot work, before anything is read."""
    attack = getattr(args, "attack", None)
    if attack is None:
        given = [
            flag
            for flag, value in (
                ("--eps", getattr(args, "eps", None)),
                ("--steps", getattr(args, "steps", None)),
                ("--step-size", getattr(args, "step_size", None)),
                ("--random-start", getattr(args, "random_start", False) or None),
                ("--attack-seed", getattr(args, "attack_seed", None)),
            )
            if value is not None
        ]
        if given:
            raise ConfigError(f"{given[0]} applies only with --attack fgsm|pgd")
        return
    target = args.source.rpartition(":")[0]
    files = [args.source] + ([target] if "/" in target or Path(target).is_file() else [])
    suffixes = [Path(p).suffix.lower() for p in files]
    what = next((_NO_GRADIENTS[x] for x in suffixes if x in _NO_GRADIENTS), None)
    if what is not None:
        raise ConfigError(
            f"--attack needs gradients of the source model from its framework (torch autograd, "
            f"or TensorFlow for Keras): --source {args.source} is {what}, which has none; give "
            "the torch or Keras model it was converted from"
        )
    if args.attack_seed is not None and not args.random_start:
        raise ConfigError("--attack-seed seeds --random-start, which was not given")
    if args.data is None:
        raise ConfigError(
            f"--attack {attack} needs --data FILE.npz with samples 'x' and labels 'y'"
        )
    if args.eps is None:
        raise ConfigError(f"--attack {attack} needs --eps E, the L-inf radius in the units of 'x'")


def _attack_spec(args: argparse.Namespace, task_data):
    """The checked attack of `args`, or None without ``--attack``."""
    if getattr(args, "attack", None) is None:
        return None
    from opseq.verify.attack import attack_spec, data_range

    if task_data.y is None:
        raise ConfigError(
            f"--attack {args.attack} needs labels: --data {task_data.path} has no array 'y'"
        )
    return attack_spec(
        args.attack,
        eps=args.eps,
        clip=data_range(task_data.x),
        steps=args.steps,
        step_size=args.step_size,
        random_start=args.random_start,
        seed=0 if args.attack_seed is None else args.attack_seed,
    )


def run_verification(args: argparse.Namespace, model, external, declared, given, task_data):
    """Load the source and verify the model: the report and its evidence (`opseq.verify`)."""
    from opseq.verify.check import verify
    from opseq.verify.inputs import check_feeds, plan_seeded
    from opseq.verify.source import load_source, search_path

    with search_path(args.source):
        source = load_source(args.source)
        count = args.sets or _DEFAULT_SETS
        seed = 0 if args.seed is None else args.seed
        strategy = args.input_strategy or "normal"
        plan = given or plan_seeded(source, declared, count=count, seed=seed, strategy=strategy)
        check_feeds(plan, declared)
        logger.info("running %s on %s", args.model, plan.describe())
        report, evidence = verify(
            args.model,
            model,
            source,
            plan,
            declared,
            rule=rule_from_args(args),
            external=external,
            task_data=task_data,
            top_k=args.top_k,
        )
        spec = _attack_spec(args, task_data)
        if spec is not None:
            report = _attack(args, report, model, external, source, plan, task_data, spec)
        return report, evidence


def _attack(args, report, model, external, source, plan, task_data, spec):
    """The report with its robustness section (`opseq.verify.robustness`)."""
    import time

    from opseq.difftest.execute import create_session
    from opseq.sources.base import ModelCase
    from opseq.verify.external import session_from_path
    from opseq.verify.robustness import evaluate_robustness

    start = time.perf_counter()
    logger.info("attacking %s: %s", args.model, spec.describe())
    # verify() keeps its session to itself; a second one costs a model load, small next to
    # the attack's gradient passes.
    session = session_from_path(args.model) if external else create_session(model)
    case = ModelCase(
        case_id=source.spec, framework=source.framework, model=source.model, inputs=plan.specs
    )
    robustness, _ = evaluate_robustness(case, session, task_data, spec)
    durations = {**report.durations, "attack": time.perf_counter() - start}
    return dataclasses.replace(report, robustness=robustness, durations=durations)


def _write_bundle(args, report, evidence, model, external):
    from opseq.verify.repro import BundleRefused, default_bundle_dir, write_bundle

    target = args.repro or default_bundle_dir(args.model, args.output)
    k = report.first_semantic_set if report.first_semantic_set is not None else 0
    try:
        path = write_bundle(
            target,
            report=report,
            model=model,
            external=external,
            inputs=evidence.onnx_feeds[k],
            expected=evidence.framework[k],
            output_names=evidence.output_names,
            input_set=k,
            force=args.force,
        )
    except BundleRefused as e:
        return dataclasses.replace(report, repro_note=str(e))
    return dataclasses.replace(report, repro=str(path))


def _warn(report) -> None:
    from opseq.tolerance import Verdict

    if report.repro_note:
        logger.warning("repro bundle not written: %s", report.repro_note)
    if report.verdict is Verdict.UNSTABLE:
        case = report.case
        logger.warning(
            "%s: unstable: the framework's own float32 disagrees with float64 on %d of %d input "
            "sets, too many to judge the conversion; it passes unjudged (give --inputs that are "
            "well-conditioned for the model, or raise --unstable-units)",
            report.model,
            case.unstable_sets,
            case.sets,
        )
