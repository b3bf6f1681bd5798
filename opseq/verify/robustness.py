"""Is the converted model less robust than the original? Adversarial accuracy, paired.

With ``--attack``, `opseq.verify.attack` crafts adversarial versions of the labelled samples on
the source model; both sides then classify the clean and the adversarial samples, batched as the
task-level checks are (`opseq.verify.task.top_classes`). The report gives each side's clean and
adversarial top-1 accuracy, the share of adversarial samples both sides put in the same class,
and the *transfer gap*: the source's adversarial accuracy minus ONNX's (positive: the export
falls for the attack more often than the model it was converted from).

Whether that gap is more than chance is an exact McNemar test on the paired per-sample
correctness on the adversarial samples: b counts samples the source gets right and ONNX wrong,
c the reverse; under "equally robust" each discordant sample is a fair coin, so the two-sided
p-value is the exact binomial test of b successes in b + c trials at 1/2
(``scipy.stats.binomtest``; 1 when b + c = 0). The answer to "Is the converted model less robust
than the original?" keeps the project's vocabulary:

- **yes**: p < alpha and b > c;
- **no**: b = c = 0 (both sides right and wrong on exactly the same adversarial samples), or
  p < alpha and c > b (the export is *more* robust: its direction says so);
- **undetermined**: discordant samples that are not significant at alpha; "not significant" is
  not evidence of "as robust" (Altman & Bland 1995).

Like the task-level checks, the answer informs and does not change the exit code, which stays
the calibrated verdict's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from opseq._optional import import_optional
from opseq.errors import ConfigError
from opseq.sources.base import ModelCase
from opseq.verify.attack import AttackSpec, craft
from opseq.verify.task import TaskData, top_classes

__all__ = [
    "DEFAULT_ALPHA",
    "QUESTION",
    "McNemar",
    "RobustnessReport",
    "evaluate_robustness",
    "mcnemar_exact",
    "robustness_from_predictions",
]

DEFAULT_ALPHA = 0.05
QUESTION = "Is the converted model less robust than the original?"


@dataclass(frozen=True, slots=True, kw_only=True)
class McNemar:
    """The exact McNemar test on paired correctness.

    Attributes:
        b: Samples the source classifies right and ONNX wrong.
        c: Samples the source classifies wrong and ONNX right.
        p_value: Exact two-sided binomial p-value of b in b + c at 1/2 (1 when b + c = 0).
    """

    b: int
    c: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {"b": self.b, "c": self.c, "p_value": self.p_value}


def mcnemar_exact(source_correct: np.ndarray, onnx_correct: np.ndarray) -> McNemar:
    """The exact McNemar test on two boolean vectors of per-sample correctness (module docstring).

    Examples:
        >>> mcnemar_exact(np.array([1, 1, 1, 0], bool), np.array([0, 0, 0, 0], bool))
        McNemar(b=3, c=0, p_value=0.25)

    Raises:
        MissingDependencyError: If scipy is not installed.
    """
    source, onnx = np.asarray(source_correct, bool), np.asarray(onnx_correct, bool)
    b, c = int(np.sum(source & ~onnx)), int(np.sum(~source & onnx))
    if b + c == 0:
        return McNemar(b=0, c=0, p_value=1.0)
    stats = import_optional("scipy.stats", "stats")
    p = float(stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)
    return McNemar(b=b, c=c, p_value=min(1.0, p))


@dataclass(frozen=True, slots=True, kw_only=True)
class RobustnessReport:
    """Clean and adversarial accuracy of both sides, and the paired verdict (module docstring).

    Attributes:
        attack: The attack.
        samples: How many samples.
        scores: How the source's output was read for the loss: ``logits`` or ``probabilities``.
        clean_accuracy: ``source`` and ``onnx`` top-1 accuracy on the clean samples.
        adversarial_accuracy: The same on the adversarial samples.
        adversarial_agreeing: Adversarial samples both sides put in the same class.
        mcnemar: The exact McNemar test on adversarial correctness.
        alpha: Its significance level.
        answer: ``yes``, ``no`` or ``undetermined``, to `QUESTION`.
        direction: ``onnx less robust``, ``onnx more robust`` or ``equal`` (b vs c).
        max_perturbation: The largest ``|x_adv - x|`` over every value (at most eps).
        notes: Remarks.
    """

    attack: AttackSpec
    samples: int
    scores: str
    clean_accuracy: dict[str, float]
    adversarial_accuracy: dict[str, float]
    adversarial_agreeing: int
    mcnemar: McNemar
    alpha: float
    answer: str
    direction: str
    max_perturbation: float
    notes: tuple[str, ...] = ()

    @property
    def adversarial_agreement(self) -> float:
        """The share of adversarial samples whose top-1 class agrees."""
        return self.adversarial_agreeing / self.samples if self.samples else 1.0

    @property
    def transfer_gap(self) -> float:
        """Source adversarial accuracy minus ONNX adversarial accuracy."""
        return self.adversarial_accuracy["source"] - self.adversarial_accuracy["onnx"]

    @property
    def reason(self) -> str:
        """Why the answer is what it is, in words (without the numbers)."""
        m = self.mcnemar
        return {
            "yes": f"p < {self.alpha:g}: the export is less robust",
            "no": (
                "no sample is right on one side and wrong on the other"
                if m.b + m.c == 0
                else f"p < {self.alpha:g}, and the export is the more robust"
            ),
            "undetermined": f"p >= {self.alpha:g}: not significant, which is not evidence of "
            "equal robustness",
        }[self.answer]

    @property
    def evidence(self) -> str:
        """The numbers behind the answer, in one sentence."""
        m = self.mcnemar
        return (
            f"b = {m.b} adversarial samples the source classifies right and ONNX wrong, c = "
            f"{m.c} the reverse; exact McNemar p = {m.p_value:.4g}; {self.reason}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "attack": self.attack.to_dict(),
            "samples": self.samples,
            "scores": self.scores,
            "clean_accuracy": dict(self.clean_accuracy),
            "adversarial_accuracy": dict(self.adversarial_accuracy),
            "adversarial_agreement": self.adversarial_agreement,
            "adversarial_agreeing": self.adversarial_agreeing,
            "transfer_gap": self.transfer_gap,
            "mcnemar": self.mcnemar.to_dict(),
            "alpha": self.alpha,
            "verdict": {
                "key": "less_robust",
                "question": QUESTION,
                "answer": self.answer,
                "direction": self.direction,
                "evidence": self.evidence,
            },
            "max_perturbation": self.max_perturbation,
            "notes": list(self.notes),
        }


def robustness_from_predictions(
    y: np.ndarray,
    clean_source: np.ndarray,
    clean_onnx: np.ndarray,
    adversarial_source: np.ndarray,
    adversarial_onnx: np.ndarray,
    *,
    spec: AttackSpec,
    alpha: float = DEFAULT_ALPHA,
    scores: str = "logits",
    max_perturbation: float = float("nan"),
    notes: tuple[str, ...] = (),
) -> RobustnessReport:
    """The report from top-1 classes per sample (pure numpy; module docstring).

    Args:
        y: The labels, (samples,).
        clean_source: The source's top-1 class of each clean sample.
        clean_onnx: ONNX Runtime's, likewise.
        adversarial_source: The source's top-1 class of each adversarial sample.
        adversarial_onnx: ONNX Runtime's, likewise.
        spec: The attack that made the adversarial samples.
        alpha: The significance level of the verdict.
        scores: How the source's output was read for the loss.
        max_perturbation: The largest ``|x_adv - x|``.
        notes: Remarks.

    Raises:
        ConfigError: If the vectors differ in length or `alpha` is not in (0, 1).
    """
    given = (y, clean_source, clean_onnx, adversarial_source, adversarial_onnx)
    vectors = [np.asarray(v).reshape(-1) for v in given]
    if len({len(v) for v in vectors}) != 1:
        raise ConfigError(
            "robustness: labels and predictions differ in length "
            f"({', '.join(str(len(v)) for v in vectors)})"
        )
    if not 0 < alpha < 1:
        raise ConfigError(f"robustness: alpha {alpha:g} must be in (0, 1)")
    y, clean_s, clean_o, adv_s, adv_o = vectors
    samples = len(y)
    right_s, right_o = adv_s == y, adv_o == y
    test = mcnemar_exact(right_s, right_o)
    significant = test.p_value < alpha
    if test.b > test.c:
        direction = "onnx less robust"
    elif test.c > test.b:
        direction = "onnx more robust"
    else:
        direction = "equal"
    if significant and test.b > test.c:
        answer = "yes"
    elif test.b + test.c == 0 or (significant and test.c > test.b):
        answer = "no"
    else:
        answer = "undetermined"

    def accuracy(predicted: np.ndarray) -> float:
        return float(np.mean(predicted == y)) if samples else 1.0

    return RobustnessReport(
        attack=spec,
        samples=samples,
        scores=scores,
        clean_accuracy={"source": accuracy(clean_s), "onnx": accuracy(clean_o)},
        adversarial_accuracy={"source": accuracy(adv_s), "onnx": accuracy(adv_o)},
        adversarial_agreeing=int(np.sum(adv_s == adv_o)),
        mcnemar=test,
        alpha=alpha,
        answer=answer,
        direction=direction,
        max_perturbation=max_perturbation,
        notes=notes,
    )


def evaluate_robustness(
    case: ModelCase,
    session: Any,
    data: TaskData,
    spec: AttackSpec,
    *,
    alpha: float = DEFAULT_ALPHA,
    scores: str = "auto",
) -> tuple[RobustnessReport, np.ndarray]:
    """Craft on the source, classify clean and adversarial samples on both sides, judge.

    Args:
        case: The source model, its one input first in ``case.inputs``.
        session: The ONNX Runtime session of the export.
        data: Labelled task data (`opseq.verify.task.load_task_data`).
        spec: The attack (`opseq.verify.attack.attack_spec`).
        alpha: The significance level of the verdict.
        scores: How to read the source's output for the loss (`opseq.verify.attack`).

    Returns:
        The report and the adversarial samples.

    Raises:
        ConfigError: If the data has no labels, the source has no input gradient, or either
            side fails on a batch.
    """
    if data.y is None:
        raise ConfigError(f"--attack needs labels: --data {data.path} has no array 'y'")
    adversarial, kind = craft(
        case.model,
        case.framework,
        data.x,
        data.y,
        spec,
        batch_size=data.batch_size,
        fixed_batch=data.fixed_batch,
        scores=scores,
    )
    clean_s, clean_o, _ = top_classes(case, session, data, k=1)
    adv_s, adv_o, _ = top_classes(case, session, data, k=1, x=adversarial)
    wide = np.abs(adversarial.astype(np.float64) - data.x.astype(np.float64))
    report = robustness_from_predictions(
        data.y,
        clean_s[:, 0],
        clean_o[:, 0],
        adv_s[:, 0],
        adv_o[:, 0],
        spec=spec,
        alpha=alpha,
        scores=kind,
        max_perturbation=float(wide.max()) if wide.size else 0.0,
    )
    return report, adversarial
