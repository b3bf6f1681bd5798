"""Framework-independent operator specifications for the synthetic model generator.

Each op is one `OpSpec`: its name, arity, the frameworks that implement it, a ``sample`` function
that draws attributes for given input types (or returns None when the op cannot apply to them),
and an ``infer`` function that computes the type of its one output. Adding an op is one
declaration plus one line per framework in the materialisers.

Two vocabularies draw from `OPS`:

- ``v1``, frozen: the float-dominated ops of ``synthetic-torch``/``synthetic-tf``
  (`float_ops`, `shape_ops`, `layout_ops`). The builder draws ops by their position in it, so
  its order and every op's sampling are part of each shipped case id and never change.
- ``wide``: v1 followed by integer, bool and variant ops (`wide_int_ops`, `wide_index_ops`,
  `wide_float_ops`, `wide_resize_ops`), grown from float, int64, int32 and bool graph inputs.

Values: ``Log`` and ``Sqrt`` accept only nonnegative inputs and ``Pow`` only a nonnegative base,
so a generated model does not turn NaN wholesale; they may still produce -inf or inf
(``Log(Relu(x))``), which is realistic.
"""

from __future__ import annotations

from opseq.errors import InternalError
from opseq.sources.synthetic.ops.float_ops import declare_float_ops
from opseq.sources.synthetic.ops.layout_ops import declare_layout_ops
from opseq.sources.synthetic.ops.shape_ops import declare_shape_ops
from opseq.sources.synthetic.ops.types import (
    BOOL,
    FLOAT,
    INT,
    INT32,
    OpSpec,
    TensorType,
    broadcast_shapes,
)
from opseq.sources.synthetic.ops.wide_float_ops import declare_wide_float_ops
from opseq.sources.synthetic.ops.wide_index_ops import declare_wide_index_ops
from opseq.sources.synthetic.ops.wide_int_ops import declare_wide_int_ops
from opseq.sources.synthetic.ops.wide_resize_ops import declare_wide_resize_ops

__all__ = [
    "INPUT_DTYPES",
    "OPS",
    "VERSIONS",
    "OpSpec",
    "TensorType",
    "broadcast_shapes",
    "vocabulary",
]

_V1 = (*declare_float_ops(), *declare_shape_ops(), *declare_layout_ops())
_WIDE = (
    *declare_wide_int_ops(),
    *declare_wide_index_ops(),
    *declare_wide_float_ops(),
    *declare_wide_resize_ops(),
)
VERSIONS = ("v1", "wide")
"""The vocabularies, by name."""
INPUT_DTYPES = {"v1": (FLOAT,), "wide": (FLOAT, INT, INT32, BOOL)}
"""The dtypes of the graph inputs each vocabulary grows from."""

OPS: dict[str, OpSpec] = {spec.name: spec for spec in (*_V1, *_WIDE)}
"""Every op, by name."""
_NAMES = {"v1": tuple(s.name for s in _V1), "wide": tuple(s.name for s in (*_V1, *_WIDE))}


def vocabulary(framework: str, version: str = "v1") -> tuple[str, ...]:
    """Return the names of the ops of `version` that `framework` implements, in order.

    Args:
        framework: ``"torch"`` or ``"tensorflow"``.
        version: ``"v1"`` (the frozen vocabulary) or ``"wide"``.

    Returns:
        Op names.

    Raises:
        KeyError: If `version` is not one of `VERSIONS`.
    """
    return tuple(name for name in _NAMES[version] if framework in OPS[name].frameworks)


if len(OPS) != len(_V1) + len(_WIDE):  # a wide op must not shadow a v1 op of the same name
    raise InternalError("duplicate op names in the synthetic vocabulary")
