"""Reading untrusted files: only regular files, sizes before bytes, refusals that say why."""

from __future__ import annotations

import os

import onnx
import pytest

from opseq.errors import LimitExceededError, ModelLoadError
from opseq.limits import PROTOBUF_MAX_NESTING, Limits
from opseq.loader import load_model, read_model_file, wire_nesting_depth
from tests import hostile, models


def test_read_model_file_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)  # opening it for reading the usual way would wait for a writer forever
    with pytest.raises(ModelLoadError, match="is a FIFO"):
        read_model_file(fifo)


def test_read_model_file_refuses_a_link_to_a_device(tmp_path):
    link = tmp_path / "model.onnx"
    link.symlink_to("/dev/zero")  # endless bytes
    with pytest.raises(ModelLoadError, match="is a character device"):
        read_model_file(link)


def test_read_model_file_follows_a_link_to_a_regular_file(tmp_path, save):
    target = save(models.chain())
    link = tmp_path / "link.onnx"
    link.symlink_to(target)
    assert read_model_file(link) == target.read_bytes()


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: None, "no such file"),
        (lambda p: p.symlink_to(p.parent / "missing"), "no such file"),
    ],
)
def test_read_model_file_names_what_is_wrong(tmp_path, make, fragment):
    path = tmp_path / "model.onnx"
    make(path)
    with pytest.raises(ModelLoadError, match=fragment):
        read_model_file(path)


def test_a_file_beyond_protobuf_is_refused_before_it_is_read(tmp_path):
    huge = tmp_path / "huge.onnx"
    with huge.open("wb") as f:
        f.truncate(3 << 30)  # sparse: 3 GiB on paper, nothing on disk
    with pytest.raises(ModelLoadError, match=r"3.0 GiB, more than the 2 GiB protobuf can parse"):
        read_model_file(huge)


def test_max_model_bytes_is_checked_on_size_and_names_the_flag(save):
    path = save(models.chain())
    size = path.stat().st_size
    assert read_model_file(path, limits=Limits(max_model_bytes=size)) == path.read_bytes()
    with pytest.raises(LimitExceededError, match=r"over the limit of .* --max-model-size"):
        read_model_file(path, limits=Limits(max_model_bytes=size - 1))
    with pytest.raises(LimitExceededError, match="--max-model-size"):
        load_model(path.read_bytes(), limits=Limits(max_model_bytes=size - 1))


@pytest.mark.parametrize("depth", [1, 2, 5, 16, 31, 32, 40])
def test_wire_nesting_depth_measures_if_nesting_without_parsing(depth):
    assert wire_nesting_depth(hostile.nested_if(depth), stop_above=100) == depth


def test_wire_nesting_depth_stops_early_and_gives_up_on_garbage():
    assert wire_nesting_depth(hostile.nested_if(10_000), stop_above=40) == 41
    assert wire_nesting_depth(b"\xff" * 64, stop_above=40) is None
    assert wire_nesting_depth(models.chain().SerializeToString(), stop_above=40) == 0


def test_nesting_beyond_protobuf_is_reported_as_nesting_not_corruption():
    data = hostile.nested_if(PROTOBUF_MAX_NESTING + 9)
    with pytest.raises(LimitExceededError, match=r"nested 32 or more deep.*--max-nesting"):
        load_model(data)
    # Even when opseq's own limit would allow it, protobuf cannot decode it: said as such.
    with pytest.raises(ModelLoadError, match="nested 40 deep, more than protobuf can decode"):
        load_model(data, limits=Limits(max_nesting=64))


def test_parsing_that_needs_too_much_memory_is_a_limit_not_a_crash():
    # 2 bytes per empty node on the wire, about 150 bytes each once parsed.
    nodes = 5_000_000
    data = b"\x08\x08\x3a" + _varint(2 * nodes) + b"\x0a\x00" * nodes
    with pytest.raises(LimitExceededError, match=r"parsing needs more memory.*--max-memory"):
        load_model(data, limits=Limits(max_memory_bytes=64 << 20))


def test_garbage_is_not_an_onnx_model():
    with pytest.raises(ModelLoadError, match="not an ONNX model"):
        load_model(b"\xff" * 64)


def test_load_model_returns_strings_protobuf_could_not_decode_as_bytes():
    # What the rest of opseq must cope with: upb hands back bytes for invalid UTF-8.
    model = load_model(hostile.invalid_utf8("producer_name"))
    assert isinstance(model, onnx.ModelProto) and isinstance(model.producer_name, bytes)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
