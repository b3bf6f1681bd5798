"""The ``opinfo`` source: PyTorch's own operator tests, one case per sample of one op and dtype.

torch ships its OpInfo database (``torch.testing._internal.common_methods_invocations.op_db``, 702
entries at torch 2.13; importing it takes seconds and needs ``expecttest``, the ``opinfo``
extra). Each entry names an op and generates sample inputs that PyTorch's developers chose to hit
corner cases: empty and zero-dimensional tensors, broadcasting, negative dims, keyword variants
such as ``approximate="tanh"``. A case wraps one sample in a one-op module
(`opseq.sources.opinfo_samples`) whose inputs are the sample's tensors.

Case ids read ``<op>[.<variant>]@<dtype>#<sample>``, e.g. ``div.floor_rounding@float32#2``: ops in
op_db order; dtypes float32, int64 and bool where the op supports them on CPU; the first
`MAX_SAMPLES_PER_OP` samples of each. Four, because generators list their plain shapes first and
then broadcast, scalar, empty and keyword variants, so four reach the first of these for most ops
while keeping the source near 4,600 cases, a few hours per exporter on two cores.

Naming cases imports torch and op_db, unlike other sources: the id list (with the skip list) is
enumerated once per torch version, one call of each sample generator per dtype, and cached as
JSON under ``default_cache_dir()/opinfo`` (`opseq.coverage.index.default_cache_dir`), so that a
campaign's workers, which build one case each, never enumerate the database.

Skipped, with the reason in `OpInfoSource.skipped` rather than silently: random ops (`RANDOM_OPS`,
and any sample whose output changes with torch's seed); ops with uninitialised output (OpInfo's
``has_nondeterministic_output``); in-place ops (a trailing ``_``, the ``in_place`` variants, and
any sample whose tensors the op changes); ops without a CPU kernel for any of the dtypes; samples
holding values that cannot be module constants, sparse, complex, quantized or bfloat16 tensors,
or no tensor at all; samples the op raises on or whose output is not tensors.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from opseq.errors import ConfigError
from opseq.sources.base import Framework, ModelCase
from opseq.sources.opinfo_catalogue import (
    DTYPES,
    MAX_SAMPLES_PER_OP,
    OP_DB_MODULE,
    RANDOM_OPS,
    SAMPLE_SEED,
    Catalogue,
    SkippedCase,
    enumerate_catalogue,
    load_catalogue,
    lookup_opinfo,
    op_db,
    op_skip_reason,
    parse_case_id,
    qualified_name,
    torch_version,
)
from opseq.sources.opinfo_samples import (
    FlatSample,
    SampleInputSets,
    UnusableSample,
    check_sample,
    draw_sample,
    flatten_sample,
    input_specs,
    json_safe,
    make_module,
    render_call,
    to_numpy,
    widen_dtypes,
)
from opseq.untrusted import escape_controls

__all__ = [
    "DTYPES",
    "MAX_SAMPLES_PER_OP",
    "RANDOM_OPS",
    "SOURCE",
    "Catalogue",
    "OpInfoSource",
    "SkippedCase",
    "load_catalogue",
    "parse_case_id",
]


def callee(opinfo: Any) -> tuple[str, bool, tuple[str, ...]]:
    """How a script calls the op: (callee, called as a method?, imports it needs).

    A public torch function is named (``torch.nn.functional.gelu``), a tensor method is called
    on the input, an ATen overload through ``torch.ops``; anything else (OpInfo's lambdas) is
    looked up in op_db by name and variant.
    """
    import torch

    op = opinfo.op
    target: Any = torch
    for part in opinfo.name.split("."):
        target = getattr(target, part, None)
    if target is op:
        name = opinfo.name if opinfo.name.startswith("torch.") else f"torch.{opinfo.name}"
        return name, False, ("import torch",)
    if getattr(torch.Tensor, opinfo.name, None) is op:
        return opinfo.name, True, ("import torch",)
    if isinstance(op, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        return f"torch.ops.{op}", False, ("import torch",)
    key = (opinfo.name, opinfo.variant_test_name)
    lookup = f"next(o.op for o in op_db if (o.name, o.variant_test_name) == {key!r})"
    return lookup, False, ("import torch", f"from {OP_DB_MODULE} import op_db")


class OpInfoSource:
    """The ``opinfo`` source (module docstring)."""

    name = "opinfo"
    framework = Framework.TORCH

    def __init__(self, ops: Sequence[str] = ()) -> None:
        self.ops = tuple(ops)

    def restricted(self, patterns: Sequence[str]) -> OpInfoSource:
        """This source narrowed to the ops whose ``name[.variant]`` matches one of `patterns`.

        Patterns are fnmatch patterns (``div*``, ``nn.functional.interpolate.*``); this is what
        a campaign's ``--ops`` option calls. Case ids keep their form.
        """
        return OpInfoSource(ops=patterns)

    def case_ids(self, *, count: int | None = None, seed: int = 0) -> Sequence[str]:
        """Return the case ids in op_db order (the seed does not change them).

        Args:
            count: Return only the first `count` ids; all of them when None.
            seed: Unused: the samples are fixed.

        Returns:
            Case ids.

        Raises:
            ConfigError: (naming ``--ops``) If the source is restricted and no case matches.
            MissingDependencyError: If torch or expecttest is not installed.
        """
        ids = list(load_catalogue().case_ids)
        if self.ops:
            ids = [i for i in ids if _matches(parse_case_id(i)[0], self.ops)]
            if not ids:
                shown = escape_controls(", ".join(self.ops))
                raise ConfigError(f"--ops {shown}: no opinfo case is of a matching op")
        return ids if count is None else ids[:count]

    def case_ids_matching(self, patterns: Sequence[str]) -> list[str]:
        """The case ids of the ops matching `patterns` (fnmatch on ``name[.variant]``).

        Only those ops are enumerated; the ids are the ones the full list holds for them.

        Raises:
            MissingDependencyError: If torch or expecttest is not installed.
        """
        chosen = [opinfo for opinfo in op_db() if _matches(qualified_name(opinfo), patterns)]
        return list(enumerate_catalogue(chosen, torch_version=torch_version()).case_ids)

    def skipped(self) -> tuple[SkippedCase, ...]:
        """The ops, dtypes and samples left out, each with its reason."""
        return load_catalogue().skipped

    def build(self, case_id: str, *, seed: int = 0) -> ModelCase:
        """Rebuild one sample (torch seeded with `SAMPLE_SEED`) as a one-op module.

        Args:
            case_id: One of `case_ids()`.
            seed: Unused: the module has no weights, and the sample is fixed (the oracle's seed
                picks the redraws of `SampleInputSets`).

        Returns:
            The module, its inputs ``x0``, ``x1``, ..., its input sets, float64 twin and
            metadata (op, variant, dtype, sample, args, kwargs, and ``call``: a Python
            expression of the call on ``x0``, ... with the imports in ``call_imports``).

        Raises:
            KeyError: If `case_id` names no op or sample.
            ValueError: If the op, dtype or sample is one the source skips.
        """
        import torch

        qualified, dtype_name, index = parse_case_id(case_id)
        opinfo = lookup_opinfo(qualified)
        dtype = getattr(torch, dtype_name)
        flat = _usable_sample(opinfo, dtype, index, case_id=case_id)
        own = tuple(to_numpy(t) for t in flat.tensors)
        specs = input_specs(own)
        op, structure = opinfo.op, flat.structure
        name, method, imports = callee(opinfo)

        def redraw(torch_seed: int):
            return flatten_sample(draw_sample(opinfo, dtype, index, seed=torch_seed))

        return ModelCase(
            case_id=case_id,
            framework=self.framework,
            model=make_module(op, structure),
            inputs=specs,
            metadata={
                "op": opinfo.name,
                "variant": opinfo.variant_test_name,
                "dtype": dtype_name,
                "sample": index,
                "args": json_safe(structure[1]),
                "kwargs": json_safe(structure[2]),
                "call": render_call(name, structure, method=method),
                "call_imports": list(imports),
            },
            float64_model=lambda: make_module(op, widen_dtypes(structure)),
            input_sets=SampleInputSets(
                own=own, specs=specs, signature=flat.signature(), redraw=redraw
            ),
        )


def _matches(qualified: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(qualified, pattern) for pattern in patterns)


def _usable_sample(opinfo: Any, dtype: Any, index: int, *, case_id: str) -> FlatSample:
    """Draw and check a case's sample as the catalogue did.

    Raises:
        KeyError: If the generator has no sample `index`.
        ValueError: If the catalogue skips the op, dtype or sample.
    """
    reason = op_skip_reason(opinfo)
    if reason is None and dtype not in opinfo.supported_dtypes("cpu"):
        reason = f"no CPU kernel for {dtype}"
    if reason is None:
        try:
            flat = flatten_sample(draw_sample(opinfo, dtype, index, seed=SAMPLE_SEED))
            check_sample(opinfo.op, flat)
            return flat
        except UnusableSample as e:
            reason = str(e)
    raise ValueError(f"opinfo case {case_id!r} is skipped: {reason}")


SOURCE = OpInfoSource()
"""The registered ``opinfo`` source."""
