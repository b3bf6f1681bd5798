from __future__ import annotations

from pathlib import Path

import onnx
import pytest


@pytest.fixture
def save(tmp_path: Path):
    """Save a model (a ModelProto or its bytes) under tmp_path and return its path."""

    def _save(model: onnx.ModelProto | bytes, name: str = "model.onnx") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
        return path

    return _save


@pytest.fixture(autouse=True, scope="session")
def _cache_of_this_session(tmp_path_factory):
    """Indexes and trained weights go to a directory of this test session, not the user's cache.

    A test that needs an empty cache sets ``OPSEQ_CACHE_DIR`` itself.
    """
    import os

    saved = os.environ.get("OPSEQ_CACHE_DIR")
    os.environ["OPSEQ_CACHE_DIR"] = str(tmp_path_factory.mktemp("opseq-cache"))
    yield
    if saved is None:
        os.environ.pop("OPSEQ_CACHE_DIR", None)
    else:
        os.environ["OPSEQ_CACHE_DIR"] = saved
