from __future__ import annotations

import sys

import numpy as np
import pytest

from opseq.errors import ConfigError
from opseq.sources.base import Framework, InputSpec
from opseq.verify.source import load_source, search_path, spec_paths
from tests.verify.support import write_factory


def _load(spec: str):
    with search_path(spec):
        return load_source(spec)


@pytest.mark.parametrize(
    ("body", "attribute", "fragment"),
    [
        ("raise RuntimeError('broken module')\n", "f", "importing"),
        ("x = 1\n", "missing", "has no attribute 'missing'"),
        ("x = 1\n", "x", "x is a int, not a callable factory"),
        ("def f():\n    raise ValueError('no model\\nsecond line')\n", "f",
         "f() raised ValueError: no model"),
        ("def f():\n    return 42\n", "f", "returned a int, neither a torch.nn.Module nor a Keras"),
        ("def f():\n    raise SystemExit(3)\n", "f", "f() raised SystemExit: 3"),
    ],
)  # fmt: skip
def test_bad_factories_are_one_line_config_errors(tmp_path, body, attribute, fragment):
    path = write_factory(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        _load(f"{path}:{attribute}")
    message = str(info.value)
    assert fragment in message and "\n" not in message and message.startswith("--source ")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("no_such_module_for_opseq:f", "no module named 'no_such_module_for_opseq'"),
        ("not a module:f", "is not a module name"),
        ("justaname", "expected package.module:factory"),
        ("missing_dir/f.py:f", "no such file"),
        ("gone.keras", "no such file"),
    ],
)
def test_malformed_or_missing_specs(spec, fragment):
    with pytest.raises(ConfigError, match="--source") as info:
        _load(spec)
    assert fragment in str(info.value)


def test_module_spec_is_found_in_the_current_directory(tmp_path, monkeypatch):
    write_factory(tmp_path, "def f():\n    return 1\n", name="opseq_cwd_factory_mod.py")
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    with pytest.raises(ConfigError, match="returned a int"):  # imported, called
        _load("opseq_cwd_factory_mod:f")
    assert sys.path == before


def test_a_file_spec_imports_its_neighbours(tmp_path):
    write_factory(tmp_path, "VALUE = 7\n", name="opseq_neighbour_mod.py")
    path = write_factory(tmp_path, "import opseq_neighbour_mod\nf = lambda: opseq_neighbour_mod"
                         ".VALUE\n")  # fmt: skip
    with pytest.raises(ConfigError, match="returned a int"):
        _load(f"{path}:f")


def test_spec_paths():
    assert [str(p) for p in spec_paths("a/b.py:f")] == ["a/b.py"]
    assert [str(p) for p in spec_paths("m.keras")] == ["m.keras"]
    assert spec_paths("pkg.mod:f") == []


@pytest.mark.torch
def test_factory_forms_torch(tmp_path):
    pytest.importorskip("torch")
    path = write_factory(tmp_path, """
        import torch
        from opseq.sources.base import InputSpec

        def bare():
            return torch.nn.ReLU()

        def with_tuple():
            return torch.nn.ReLU(), (torch.ones(1, 4), torch.zeros(2, dtype=torch.int64))

        def with_dict():
            return torch.nn.ReLU(), {"x": torch.ones(1, 4)}

        def with_one():
            return torch.nn.ReLU(), torch.ones(1, 4)

        def with_specs():
            return torch.nn.ReLU(), [InputSpec(name="x", shape=(1, 4))]

        def with_junk():
            return torch.nn.ReLU(), "junk"
    """)  # fmt: skip
    bare = _load(f"{path}:bare")
    assert bare.framework is Framework.TORCH and bare.specs is None and bare.examples is None
    examples = _load(f"{path}:with_tuple").examples
    assert [e.dtype for e in examples] == [np.float32, np.int64]
    assert list(_load(f"{path}:with_dict").examples) == ["x"]
    assert _load(f"{path}:with_one").examples[0].shape == (1, 4)
    assert _load(f"{path}:with_specs").specs == (InputSpec(name="x", shape=(1, 4)),)
    with pytest.raises(ConfigError, match="second item is a str"):
        _load(f"{path}:with_junk")
