"""Model sources: plugins that name model cases and build them as framework models.

Built-in sources are looked up by name; any other source is named ``package.module:attribute``
(an object with the attributes of `Source`), so users can plug in their own.
"""

from __future__ import annotations

import importlib
import os
import sys

from opseq.errors import ConfigError
from opseq.sources.base import Framework, InputSpec, ModelCase, Source, make_inputs

__all__ = [
    "SOURCES",
    "Framework",
    "InputSpec",
    "ModelCase",
    "Source",
    "get_source",
    "make_inputs",
]

SOURCES: dict[str, str] = {
    "opinfo": "opseq.sources.opinfo:SOURCE",
    "synthetic-tf": "opseq.sources.synthetic.source:TF_SOURCE",
    "synthetic-tf-wide": "opseq.sources.synthetic.source:TF_WIDE_SOURCE",
    "synthetic-torch": "opseq.sources.synthetic.source:TORCH_SOURCE",
    "synthetic-torch-wide": "opseq.sources.synthetic.source:TORCH_WIDE_SOURCE",
    "trained": "opseq.sources.trained:SOURCE",
    "zoo-keras": "opseq.sources.zoo_keras:SOURCE",
    "zoo-transformers": "opseq.sources.zoo_transformers:SOURCE",
    "zoo-torch": "opseq.sources.zoo_torch:SOURCE",
}


def get_source(name: str) -> Source:
    """Return the source called `name`, built in or ``package.module:attribute``.

    Importing a source module must not import a framework; building its cases may.

    Raises:
        ConfigError: If there is no such source, or the object is not a `Source`.
    """
    spec = SOURCES.get(name, name if ":" in name else None)
    if spec is None:
        raise ConfigError(
            f"unknown source {name!r}; known: {', '.join(SOURCES)}, or module:attribute"
        )
    module_name, _, attribute = spec.partition(":")
    if name not in SOURCES and os.getcwd() not in sys.path:
        # Like ``python -m``: a plugin module in the current directory is found (workers
        # inherit the search path).
        sys.path.insert(0, os.getcwd())
    try:
        source = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot load source {name!r} from {spec}: {e}") from e
    if not isinstance(source, Source):
        raise ConfigError(f"{spec} is not a source (needs name, framework, case_ids, build)")
    return source
