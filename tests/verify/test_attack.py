"""FGSM / PGD on real torch and Keras models, and the paired robustness verdict (real ORT)."""

from __future__ import annotations

import math
import re

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from opseq.errors import ConfigError
from opseq.sources.base import Framework, InputSpec, ModelCase
from opseq.verify.attack import attack_spec, craft, craft_adversarial, data_range, score_kind
from opseq.verify.robustness import (
    evaluate_robustness,
    mcnemar_exact,
    robustness_from_predictions,
)
from opseq.verify.task import TaskData

# A two-class linear model: logit 0 is 0, logit 1 is W_DIFF . x. Its cross-entropy gradient with
# respect to x is p_other * (w_other - w_label), so FGSM moves x by eps * sign(w_other - w_label):
# -eps * sign(W_DIFF) for label 1, +eps * sign(W_DIFF) for label 0.
W_DIFF = np.array([1.0, -1.0, 1.0, -1.0], np.float32)
EPS = 0.125  # dyadic, like every value of X: the closed form is exact in float32
# Class-1 samples have margin W_DIFF . x = +1, class-0 samples -1; FGSM at EPS takes 0.5 off each.
# The last two rows sit on the data range's edges, where the step is clipped.
X = np.array(
    [
        [0.75, 0.25, 0.75, 0.25],
        [0.5, 0.0, 0.75, 0.25],
        [0.25, 0.75, 0.25, 0.75],
        [0.0, 0.5, 0.25, 0.75],
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
    ],
    np.float32,
)
Y = np.array([1, 1, 0, 0, 1, 0], np.int64)
CLIP = (0.0, 1.0)

LINEAR_FACTORY = """
    import numpy as np
    import torch
    from opseq.sources.base import InputSpec

    def linear(softmax=False):
        layer = torch.nn.Linear(4, 2)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 1.0, -1.0]]))
            layer.bias.zero_()
        model = torch.nn.Sequential(layer, torch.nn.Softmax(-1)) if softmax else layer
        return model.eval(), [InputSpec(name="x", shape=(1, 4))]

    def linear_softmax():
        return linear(softmax=True)
"""


def closed_form(x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    """FGSM on the linear model: x + eps * sign(w_other - w_label), clipped to [0, 1]."""
    direction = np.where(y[:, None] == 1, -1.0, 1.0) * np.sign(W_DIFF)
    return np.clip(x + np.float32(eps) * direction.astype(np.float32), *CLIP)


def torch_linear(softmax: bool = False):
    torch = pytest.importorskip("torch")
    layer = torch.nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(np.stack([np.zeros(4, np.float32), W_DIFF])))
        layer.bias.zero_()
    model = torch.nn.Sequential(layer, torch.nn.Softmax(-1)) if softmax else layer
    return model.eval()


def keras_linear(softmax: bool = False):
    keras = pytest.importorskip("keras")
    inputs = keras.Input((4,), name="x")
    dense = keras.layers.Dense(2, activation="softmax" if softmax else None)
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.stack([np.zeros(4, np.float32), W_DIFF], axis=1), np.zeros(2)])
    return model


def task_data(x=X, y=Y, *, batch_size: int = 64) -> TaskData:
    return TaskData(path="d.npz", x=x, y=y, batch_size=batch_size, fixed_batch=False)


def torch_onnx(model, path, *, bias=None):
    """Export with the TorchScript exporter, dynamic batch; optionally overwrite the bias."""
    from tests.verify.support import torch_export

    torch = pytest.importorskip("torch")
    torch_export(model, (torch.zeros(1, 4),), path, input_names=["x"], output_names=["scores"],
                 dynamic_axes={"x": {0: "n"}})  # fmt: skip
    if bias is not None:
        proto = onnx.load(str(path))
        (tensor,) = [t for t in proto.graph.initializer if list(t.dims) == [2]]
        tensor.CopyFrom(numpy_helper.from_array(np.asarray(bias, np.float32), tensor.name))
        onnx.save(proto, str(path))
    return path


def session_for(path):
    from opseq.difftest.execute import create_session

    return create_session(onnx.load(str(path)))


# --- parameters: no framework needed ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"eps": 0.0}, "--eps 0: must be a positive finite number"),
        ({"eps": -0.1}, "--eps -0.1: must be a positive finite number"),
        ({"eps": math.nan}, "--eps nan: must be a positive finite number"),
        ({"eps": math.inf}, "--eps inf: must be a positive finite number"),
        ({"eps": 1.5}, "--eps 1.5: larger than the data range [0, 1] (max - min = 1)"),
        ({"eps": 0.1, "steps": 5}, "--steps applies to --attack pgd"),
        ({"eps": 0.1, "step_size": 0.01}, "--step-size applies to --attack pgd"),
        ({"eps": 0.1, "random_start": True}, "--random-start applies to --attack pgd"),
    ],
)
def test_fgsm_parameters_out_of_range(kwargs, fragment):
    with pytest.raises(ConfigError) as caught:
        attack_spec("fgsm", clip=CLIP, **kwargs)
    assert fragment in str(caught.value)


def test_pgd_parameters_and_defaults():
    spec = attack_spec("pgd", eps=0.1, clip=CLIP)
    assert (spec.steps, spec.step_size) == (10, pytest.approx(0.025))
    assert attack_spec("pgd", eps=0.2, clip=CLIP, steps=4).step_size == pytest.approx(0.125)
    assert attack_spec("fgsm", eps=0.1, clip=CLIP).to_dict() == {
        "method": "fgsm", "eps": 0.1, "steps": 1, "step_size": 0.1, "clip": [0.0, 1.0],
        "random_start": False, "seed": 0,
    }  # fmt: skip
    for kwargs, fragment in (
        ({"step_size": 0.0}, "--step-size 0"),
        ({"step_size": math.nan}, "--step-size nan"),
        ({"steps": 0}, "--steps 0: must be at least 1"),
    ):
        with pytest.raises(ConfigError, match=fragment):
            attack_spec("pgd", eps=0.1, clip=CLIP, **kwargs)
    with pytest.raises(ConfigError, match="expected one of fgsm, pgd"):
        attack_spec("cw", eps=0.1, clip=CLIP)


def test_data_range_and_score_kind():
    assert data_range(X) == (0.0, 1.0)
    with pytest.raises(ConfigError, match="NaN or an infinity"):
        data_range(np.array([0.0, np.nan]))
    assert score_kind(np.array([[0.25, 0.75], [1.0, 0.0]])) == "probabilities"
    assert score_kind(np.array([[0.25, 0.5], [1.0, 0.0]])) == "logits"
    assert score_kind(np.array([[-1.0, 2.0]])) == "logits"


def test_mcnemar_exact_p_values():
    def test(b, c):
        source = np.array([True] * b + [False] * c + [True, False])
        onnx_ = np.array([False] * b + [True] * c + [True, False])
        return mcnemar_exact(source, onnx_)

    assert test(0, 0).p_value == 1.0
    assert (test(3, 0).b, test(3, 0).c, test(3, 0).p_value) == (3, 0, 0.25)
    assert test(7, 0).p_value == pytest.approx(2 / 2**7)
    assert test(0, 7).p_value == pytest.approx(2 / 2**7)
    assert test(5, 5).p_value == 1.0
    # binomial(10, 1/2): P(X <= 1) + P(X >= 9) = 2 * 11 / 1024
    assert test(9, 1).p_value == pytest.approx(22 / 1024)


def test_verdicts_yes_no_undetermined():
    spec = attack_spec("fgsm", eps=0.1, clip=CLIP)
    y = np.zeros(10, np.int64)
    right, wrong = np.zeros(10, np.int64), np.ones(10, np.int64)

    def report(adv_source, adv_onnx):
        return robustness_from_predictions(y, right, right, adv_source, adv_onnx, spec=spec)

    same = report(right, right)
    assert (same.answer, same.direction, same.mcnemar.p_value) == ("no", "equal", 1.0)
    assert same.adversarial_agreement == 1.0 and same.transfer_gap == 0.0
    less = report(right, wrong)  # b = 10, c = 0
    assert (less.answer, less.direction) == ("yes", "onnx less robust")
    assert less.transfer_gap == 1.0 and less.adversarial_accuracy == {"source": 1.0, "onnx": 0.0}
    assert less.mcnemar.p_value == pytest.approx(2 / 1024)
    assert "p < 0.05: the export is less robust" in less.evidence
    more = report(wrong, right)
    assert (more.answer, more.direction, more.transfer_gap) == ("no", "onnx more robust", -1.0)
    few = report(right, np.array([1, 1, 1] + [0] * 7))  # b = 3: p = 0.25
    assert (few.answer, few.direction) == ("undetermined", "onnx less robust")
    document = few.to_dict()
    assert (
        document["verdict"]["question"] == "Is the converted model less robust than the original?"
    )
    assert document["mcnemar"] == {"b": 3, "c": 0, "p_value": 0.25}
    assert document["transfer_gap"] == pytest.approx(0.3)
    with pytest.raises(ConfigError, match="differ in length"):
        robustness_from_predictions(y[:3], right, right, right, right, spec=spec)


# --- torch ------------------------------------------------------------------------------------


@pytest.mark.torch
@pytest.mark.parametrize("softmax", [False, True], ids=["logits", "probabilities"])
def test_torch_fgsm_is_the_closed_form(softmax):
    model = torch_linear(softmax)
    adversarial, kind = craft(
        model, Framework.TORCH, X, Y, attack_spec("fgsm", eps=EPS, clip=CLIP), batch_size=4
    )
    assert kind == ("probabilities" if softmax else "logits")
    expected = closed_form(X, Y, EPS)
    np.testing.assert_array_equal(adversarial, expected)
    assert adversarial.dtype == np.float32
    # the edge rows were clipped: a 0 moving down stays 0
    np.testing.assert_array_equal(adversarial[4], [0.875, 0.125, 0.0, 0.125])
    np.testing.assert_array_equal(adversarial[5], [0.125, 0.875, 0.125, 0.0])


@pytest.mark.torch
def test_torch_pgd_stays_in_the_ball_and_the_data_range():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, size=(40, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=40)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    eps = 0.1
    kwargs = dict(method="pgd", eps=eps, clip=(0.0, 1.0), steps=7, random_start=True)
    adversarial = craft_adversarial(model, Framework.TORCH, x, y, seed=3, **kwargs)
    assert adversarial.shape == x.shape and adversarial.dtype == np.float32
    assert np.all(np.abs(adversarial.astype(np.float64) - x.astype(np.float64)) <= eps)
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0
    assert np.abs(adversarial - x).max() > 0.09  # it moved to the ball's edge
    again = craft_adversarial(model, Framework.TORCH, x, y, seed=3, batch_size=7, **kwargs)
    np.testing.assert_array_equal(adversarial, again)  # seeded, and batch-size independent
    other = craft_adversarial(model, Framework.TORCH, x, y, seed=4, **kwargs)
    assert not np.array_equal(adversarial, other)
    with torch.no_grad():

        def accuracy(samples):
            return float((model(torch.from_numpy(samples)).argmax(1).numpy() == y).mean())

        fgsm = craft_adversarial(model, Framework.TORCH, x, y, method="fgsm", eps=eps,
                                 clip=(0.0, 1.0))  # fmt: skip
        assert accuracy(adversarial) <= accuracy(fgsm) <= accuracy(x)


@pytest.mark.torch
def test_torch_models_without_an_input_gradient_are_refused():
    torch = pytest.importorskip("torch")

    class Detached(torch.nn.Module):
        def forward(self, x):
            return torch.stack([x.sum(1), -x.sum(1)], 1).detach()

    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(2))

        def forward(self, x):
            return self.bias.expand(len(x), 2)

    spec = attack_spec("fgsm", eps=EPS, clip=CLIP)
    with pytest.raises(ConfigError, match="no gradient with respect to its input"):
        craft(Detached(), Framework.TORCH, X, Y, spec)
    with pytest.raises(ConfigError, match="does not depend on the input"):
        craft(Constant(), Framework.TORCH, X, Y, spec)
    with pytest.raises(ConfigError, match="attacks need floating inputs"):
        craft(torch_linear(), Framework.TORCH, X.astype(np.int64), Y, spec)
    with pytest.raises(
        ConfigError, match=re.escape("labels 'y' range over 0..2, the model scores 2")
    ):
        craft(torch_linear(), Framework.TORCH, X, np.array([0, 1, 2, 0, 1, 0]), spec)
    with pytest.raises(ConfigError, match="one integer label per sample"):
        craft(torch_linear(), Framework.TORCH, X, Y[:3], spec)


@pytest.mark.torch
def test_onnx_export_is_exactly_as_robust(tmp_path):
    model = torch_linear()
    session = session_for(torch_onnx(model, tmp_path / "linear.onnx"))
    case = ModelCase(case_id="linear", framework=Framework.TORCH, model=model,
                     inputs=(InputSpec(name="x", shape=(1, 4)),))  # fmt: skip
    report, adversarial = evaluate_robustness(
        case, session, task_data(batch_size=4), attack_spec("fgsm", eps=EPS, clip=CLIP)
    )
    np.testing.assert_array_equal(adversarial, closed_form(X, Y, EPS))
    assert report.adversarial_agreement == 1.0
    assert (report.mcnemar.b, report.mcnemar.c, report.mcnemar.p_value) == (0, 0, 1.0)
    assert (report.answer, report.direction) == ("no", "equal")
    assert report.clean_accuracy == {"source": 1.0, "onnx": 1.0}
    # margins +-1 lose 0.5 to FGSM (the edge rows lose less): still all right on both sides
    assert report.adversarial_accuracy == {"source": 1.0, "onnx": 1.0}
    assert report.max_perturbation == EPS


@pytest.mark.torch
def test_an_altered_export_is_less_robust(tmp_path):
    """The export's class-1 bias moved by -0.75: clean margins +1 -> +0.25 (still right), but
    adversarial margins +0.5 -> -0.25 (wrong): b = every class-1 sample, c = 0."""
    model = torch_linear()
    x = np.repeat(X[:4], 6, axis=0)  # 12 class-1 and 12 class-0 samples, margins +-1
    y = np.repeat(Y[:4], 6)
    path = torch_onnx(model, tmp_path / "altered.onnx", bias=[0.0, -0.75])
    case = ModelCase(case_id="linear", framework=Framework.TORCH, model=model,
                     inputs=(InputSpec(name="x", shape=(1, 4)),))  # fmt: skip
    report, _ = evaluate_robustness(
        case, session_for(path), task_data(x, y), attack_spec("fgsm", eps=EPS, clip=CLIP)
    )
    assert report.clean_accuracy == {"source": 1.0, "onnx": 1.0}
    assert report.adversarial_accuracy == {"source": 1.0, "onnx": 0.5}
    assert report.transfer_gap == 0.5 and report.adversarial_agreement == 0.5
    assert (report.mcnemar.b, report.mcnemar.c) == (12, 0)
    assert report.mcnemar.p_value == pytest.approx(2 / 2**12)
    assert (report.answer, report.direction) == ("yes", "onnx less robust")


# --- Keras (TensorFlow backend) ---------------------------------------------------------------


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("softmax", [False, True], ids=["logits", "probabilities"])
def test_keras_fgsm_is_the_closed_form_and_pgd_stays_in_the_ball(softmax):
    model = keras_linear(softmax)
    adversarial, kind = craft(
        model, Framework.TENSORFLOW, X, Y, attack_spec("fgsm", eps=EPS, clip=CLIP), batch_size=4
    )
    assert kind == ("probabilities" if softmax else "logits")
    np.testing.assert_array_equal(adversarial, closed_form(X, Y, EPS))
    pgd = craft_adversarial(model, Framework.TENSORFLOW, X, Y, method="pgd", eps=0.1, clip=CLIP,
                            steps=3, random_start=True, seed=1)  # fmt: skip
    assert np.all(np.abs(pgd.astype(np.float64) - X.astype(np.float64)) <= 0.1)
    assert pgd.min() >= 0.0 and pgd.max() <= 1.0
