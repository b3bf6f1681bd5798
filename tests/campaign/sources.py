"""Model sources for campaign tests, named on the command line as ``tests.campaign.sources:NAME``.

``TINY`` builds small real torch models; ``HOSTILE`` has cases whose building aborts the process,
hangs, allocates beyond any cap, or raises, next to a normal case.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opseq.sources import Framework, InputSpec, ModelCase


def _mlp(seed: int) -> ModelCase:
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    return ModelCase(
        case_id="mlp",
        framework=Framework.TORCH,
        model=model.eval(),
        inputs=(InputSpec(name="x", shape=(2, 8)),),
    )


def _conv(seed: int) -> ModelCase:
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.Sigmoid(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    )
    return ModelCase(
        case_id="conv",
        framework=Framework.TORCH,
        model=model.eval(),
        inputs=(InputSpec(name="image", shape=(1, 3, 8, 8)),),
    )


def _abort(seed: int) -> ModelCase:
    os.abort()


def _hang(seed: int) -> ModelCase:
    while True:
        time.sleep(1)


def _allocate(seed: int) -> ModelCase:
    hoard = []
    while True:  # far beyond any test's memory cap
        chunk = bytearray(64 * 2**20)
        chunk[::4096] = b"x" * len(chunk[::4096])
        hoard.append(chunk)


def _raise(seed: int) -> ModelCase:
    raise RuntimeError("this architecture cannot be built")


@dataclass(frozen=True)
class _TestSource:
    name: str
    builders: dict[str, Callable[[int], ModelCase]] = field(default_factory=dict)
    framework: Framework = Framework.TORCH

    def case_ids(self, *, count: int | None, seed: int) -> Sequence[str]:
        ids = list(self.builders)
        return ids if count is None else ids[:count]

    def build(self, case_id: str, *, seed: int) -> ModelCase:
        return self.builders[case_id](seed)


TINY = _TestSource("tiny", {"mlp": _mlp, "conv": _conv})
HOSTILE = _TestSource(
    "hostile",
    {"mlp": _mlp, "abort": _abort, "hang": _hang, "allocate": _allocate, "raise": _raise},
)
