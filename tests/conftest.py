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
