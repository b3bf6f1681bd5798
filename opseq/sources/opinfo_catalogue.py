"""The catalogue of the ``opinfo`` source: which op, dtype and sample is a case, and which is not.

`enumerate_catalogue` goes through op_db once (one call of each sample generator per dtype) and
names every case and every skip with its reason (`opseq.sources.opinfo` lists the rules);
`load_catalogue` caches the result as JSON under the opseq cache directory, keyed by the torch
version and the source of the rules (this module and `opseq.sources.opinfo_samples`), so that
naming cases costs one file read after the first time. The cache file is untrusted like any
cache: one that is malformed, oversized or made for another torch version or other rules is
rebuilt.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opseq._optional import import_optional
from opseq.errors import MissingDependencyError
from opseq.sources.opinfo_samples import UnusableSample, check_sample, draw_samples, flatten_sample

__all__ = [
    "DTYPES",
    "MAX_SAMPLES_PER_OP",
    "OP_DB_MODULE",
    "RANDOM_OPS",
    "SAMPLE_SEED",
    "Catalogue",
    "SkippedCase",
    "case_id",
    "catalogue_path",
    "enumerate_catalogue",
    "load_catalogue",
    "lookup_opinfo",
    "op_db",
    "op_skip_reason",
    "parse_case_id",
    "qualified_name",
    "torch_version",
]

logger = logging.getLogger(__name__)

MAX_SAMPLES_PER_OP = 4
DTYPES = ("float32", "int64", "bool")
SAMPLE_SEED = 0
"""torch seed before ``sample_inputs``: a case's sample is the same in every process."""
RANDOM_OPS = (
    "bernoulli",
    "cauchy",
    "exponential",
    "geometric",
    "log_normal",
    "multinomial",
    "normal",
    "poisson",
    "rand",
    "rand_like",
    "randint",
    "randint_like",
    "randn",
    "randn_like",
    "randperm",
    "uniform",
    "nn.functional.*dropout*",
    "nn.functional.rrelu",
    "nn.functional.gumbel_softmax",
    "nn.functional.fractional_max_pool*",
    "svd_lowrank",
    "pca_lowrank",
)
"""fnmatch patterns of ops whose purpose is randomness (skipped without drawing samples)."""

OP_DB_MODULE = "torch.testing._internal.common_methods_invocations"
_CASE_ID = re.compile(r"(?P<qualified>.+)@(?P<dtype>[a-z0-9]+)#(?P<sample>[0-9]{1,4})")
_FORMAT = "opseq-opinfo-catalogue"
_MAX_CATALOGUE_BYTES = 64 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedCase:
    """An op, dtype or sample the source leaves out, and why (None: all dtypes or samples)."""

    op: str
    variant: str
    dtype: str | None
    sample: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "op": self.op,
            "variant": self.variant,
            "dtype": self.dtype,
            "sample": self.sample,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalogue:
    """The source's case ids and skip list for one torch version."""

    torch_version: str
    case_ids: tuple[str, ...]
    skipped: tuple[SkippedCase, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe dict the cache file holds."""
        return {
            "format": _FORMAT,
            "key": _catalogue_key(self.torch_version),
            "torch": self.torch_version,
            "cases": list(self.case_ids),
            "skipped": [s.to_dict() for s in self.skipped],
        }

    @classmethod
    def from_dict(cls, data: Any, *, torch_version: str) -> Catalogue:
        """Read a cache file's dict (untrusted).

        Raises:
            ValueError: If it is malformed or made for another torch version or set of rules.
        """
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError("not an opinfo catalogue")
        if data.get("key") != _catalogue_key(torch_version):
            raise ValueError("made for another torch version or other rules")
        cases, skipped = data.get("cases"), data.get("skipped")
        if not isinstance(cases, list) or not all(
            isinstance(c, str) and _CASE_ID.fullmatch(c) for c in cases
        ):
            raise ValueError("malformed case ids")
        if not isinstance(skipped, list):
            raise ValueError("malformed skip list")
        return cls(
            torch_version=torch_version,
            case_ids=tuple(cases),
            skipped=tuple(_skipped_from_dict(s) for s in skipped),
        )


def _skipped_from_dict(data: Any) -> SkippedCase:
    if not isinstance(data, dict):
        raise ValueError("malformed skip entry")
    op, variant, reason = data.get("op"), data.get("variant"), data.get("reason")
    dtype, sample = data.get("dtype"), data.get("sample")
    if not all(isinstance(v, str) for v in (op, variant, reason)):
        raise ValueError("malformed skip entry")
    if dtype is not None and not isinstance(dtype, str):
        raise ValueError("malformed skip dtype")
    if sample is not None and (type(sample) is not int or sample < 0):
        raise ValueError("malformed skip sample")
    return SkippedCase(op=op, variant=variant, dtype=dtype, sample=sample, reason=reason)


def qualified_name(opinfo: Any) -> str:
    """``name`` or ``name.variant``: the op part of a case id."""
    variant = opinfo.variant_test_name
    return f"{opinfo.name}.{variant}" if variant else opinfo.name


def case_id(opinfo: Any, dtype: str, sample: int) -> str:
    """The id of one sample of one op and dtype."""
    return f"{qualified_name(opinfo)}@{dtype}#{sample}"


def parse_case_id(text: str) -> tuple[str, str, int]:
    """Split a case id into (op[.variant], dtype, sample index).

    Raises:
        KeyError: If `text` is not an opinfo case id.

    Examples:
        >>> parse_case_id("div.floor_rounding@float32#2")
        ('div.floor_rounding', 'float32', 2)
    """
    match = _CASE_ID.fullmatch(text)
    if match is None or match["dtype"] not in DTYPES:
        raise KeyError(f"{text!r} is not an opinfo case id (<op>[.<variant>]@<dtype>#<sample>)")
    return match["qualified"], match["dtype"], int(match["sample"])


def op_skip_reason(opinfo: Any) -> str | None:
    """Why a whole op is left out, or None."""
    if any(fnmatch.fnmatchcase(opinfo.name, pattern) for pattern in RANDOM_OPS):
        return "random (its output is a draw, not a function of its inputs)"
    if getattr(opinfo, "has_nondeterministic_output", False):
        return "its output is not determined by its inputs (uninitialised memory)"
    if getattr(opinfo.op, "__module__", "").startswith("torch.cuda"):
        return "needs CUDA (a torch.cuda op)"
    in_place = opinfo.name.endswith("_") and not opinfo.name.endswith("__")
    if in_place or opinfo.variant_test_name == "in_place":
        return "in place only (it changes its input)"
    cpu = {str(d).removeprefix("torch.") for d in opinfo.supported_dtypes("cpu")}
    if not cpu:
        return "no CPU kernel (needs CUDA)"
    if not cpu & set(DTYPES):
        return f"supports none of {', '.join(DTYPES)} on CPU (only {', '.join(sorted(cpu))})"
    return None


def enumerate_catalogue(op_db: Sequence[Any], *, torch_version: str) -> Catalogue:
    """Name every case of `op_db` and every skip (one generator call per op and dtype)."""
    import torch

    ids: list[str] = []
    skipped: list[SkippedCase] = []
    for opinfo in op_db:
        where = {"op": opinfo.name, "variant": opinfo.variant_test_name}
        reason = op_skip_reason(opinfo)
        if reason is not None:
            skipped.append(SkippedCase(**where, dtype=None, sample=None, reason=reason))
            continue
        cpu = set(opinfo.supported_dtypes("cpu"))
        for dtype in (d for d in DTYPES if getattr(torch, d) in cpu):
            try:
                samples = draw_samples(
                    opinfo, getattr(torch, dtype), count=MAX_SAMPLES_PER_OP, seed=SAMPLE_SEED
                )
            except Exception as e:  # a generator that fails is a skip, like a sample that does
                reason = f"its sample generator raises {type(e).__name__}: {e}"
                skipped.append(SkippedCase(**where, dtype=dtype, sample=None, reason=reason[:200]))
                continue
            for index, sample in enumerate(samples):
                try:
                    check_sample(opinfo.op, flatten_sample(sample))
                except UnusableSample as e:
                    skipped.append(SkippedCase(**where, dtype=dtype, sample=index, reason=str(e)))
                    continue
                ids.append(case_id(opinfo, dtype, index))
    if len(set(ids)) != len(ids):
        raise ValueError("op_db holds two ops of the same name and variant")
    return Catalogue(torch_version=torch_version, case_ids=tuple(ids), skipped=tuple(skipped))


def torch_version() -> str:
    """The installed torch's version, read without importing it.

    Raises:
        MissingDependencyError: If torch is not installed.
    """
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError as e:
        raise MissingDependencyError(
            "the opinfo source needs torch; install it with: pip install 'opseq[torch,opinfo]'"
        ) from e


@functools.cache
def _catalogue_key(version: str) -> str:
    """The torch version and the source of the rules (this module and the sample checks)."""
    from opseq.sources import opinfo_samples

    digest = hashlib.sha256(version.encode())
    for module in (opinfo_samples, sys.modules[__name__]):
        assert module.__file__ is not None
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def catalogue_path(cache_dir: Path, version: str) -> Path:
    """Where the catalogue of torch `version` is cached."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in version)
    return cache_dir / "opinfo" / f"catalogue-torch-{safe}-{_catalogue_key(version)}.json"


def load_catalogue(cache_dir: Path | None = None) -> Catalogue:
    """The catalogue of the installed torch: from the cache file, else enumerated and cached.

    Args:
        cache_dir: The opseq cache directory; None: ``default_cache_dir()``.

    Raises:
        MissingDependencyError: If torch or expecttest is not installed.
    """
    from opseq.coverage.index import default_cache_dir

    return _cached_catalogue(cache_dir or default_cache_dir(), torch_version())


@functools.cache
def _cached_catalogue(cache_dir: Path, version: str) -> Catalogue:
    path = catalogue_path(cache_dir, version)
    try:
        with path.open("rb") as stream:
            raw = stream.read(_MAX_CATALOGUE_BYTES + 1)
        if len(raw) > _MAX_CATALOGUE_BYTES:
            raise ValueError("larger than any catalogue opseq writes")
        return Catalogue.from_dict(json.loads(raw), torch_version=version)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:
        logger.warning("the cached opinfo catalogue %s is unusable (%s); rebuilding it", path, e)
    logger.info("enumerating torch's OpInfo samples (once per torch version)")
    catalogue = enumerate_catalogue(op_db(), torch_version=version)
    _write_json(path, catalogue.to_dict())
    return catalogue


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically; a cache that cannot be written is only a warning."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".catalogue-", suffix=".tmp")
        with os.fdopen(handle, "w") as stream:
            json.dump(data, stream)
        os.replace(temporary, path)
    except OSError as e:
        logger.warning("could not cache the opinfo catalogue in %s: %s", path.parent, e)


@functools.cache
def op_db() -> tuple[Any, ...]:
    """Torch's OpInfo database (imported on first use: seconds).

    Raises:
        MissingDependencyError: If torch or expecttest is not installed.
    """
    module = import_optional(OP_DB_MODULE, "opinfo")
    return tuple(module.op_db)


@functools.cache
def _opinfos_by_name() -> dict[str, Any]:
    return {qualified_name(opinfo): opinfo for opinfo in op_db()}


def lookup_opinfo(qualified: str) -> Any:
    """The OpInfo called `qualified` (``name`` or ``name.variant``).

    Raises:
        KeyError: If op_db has none.
    """
    try:
        return _opinfos_by_name()[qualified]
    except KeyError:
        raise KeyError(f"op_db has no op {qualified!r} (name or name.variant)") from None
