"""tdm_edge.metadata: the ONNX metadata read by a protobuf walk, checked against what the onnx package reads."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tdm_edge import metadata
from tdm_edge.errors import UsageError
from tdm_edge.metadata import (METADATA_KEY, NotOnnx, engine_metadata, model_metadata, onnx_metadata_props,
                               read_metadata)


def small_model(props: dict, size: int = 1000) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.arange(size, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size])], [w])
    model = helper.make_model(graph, producer_name="test", doc_string="a doc string")
    helper.set_model_props(model, props)
    return model


def onnx_props(path) -> dict:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def test_equal_to_onnx_on_an_export(device_files):
    for name in ("pruned.onnx", "unpruned.onnx"):
        props = onnx_metadata_props(device_files / name)
        assert props == onnx_props(device_files / name) and METADATA_KEY in props
    meta = read_metadata(device_files / "pruned.onnx")
    assert meta["reduction"]["stage_tokens"] == [65, 46, 33, 24]
    assert meta == read_metadata(device_files / "pruned.json")  # the sidecar says the same


def test_equal_to_onnx_with_unicode_empty_values_and_external_data(tmp_path):
    props = {METADATA_KEY: json.dumps({"labels": ["chat", "çà", "猫"]}), "empty": "", "k" * 300: "v" * 70000}
    path = tmp_path / "m.onnx"
    onnx.save(small_model(props), str(path))
    assert onnx_metadata_props(path) == onnx_props(path) == props
    external = tmp_path / "ext.onnx"
    onnx.save(small_model(props, 50000), str(external), save_as_external_data=True, location="ext.data",
              size_threshold=0)
    assert os.path.getsize(tmp_path / "ext.data") >= 200000  # the weights are outside the .onnx
    assert onnx_metadata_props(external) == props


def test_the_graph_is_skipped_not_read(tmp_path, monkeypatch):
    path = tmp_path / "big.onnx"
    onnx.save(small_model({METADATA_KEY: "{}"}, 2_000_000), str(path))  # 8 MB of weights
    read = []
    real_open = open

    class Counting:
        def __init__(self, f):
            self.f = f

        def __getattr__(self, name):
            return getattr(self.f, name)

        def read(self, n=-1):
            data = self.f.read(n)
            read.append(len(data))
            return data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(metadata, "open", lambda p, mode="r": Counting(real_open(p, mode)), raising=False)
    assert onnx_metadata_props(path) == {METADATA_KEY: "{}"}
    assert os.path.getsize(path) > 8_000_000 and 0 < sum(read) < 1000


def test_a_model_past_2_gb(tmp_path):
    """A ModelProto whose graph field is 2.2 GB (a sparse file: the zeros are never written or read)."""
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    entry = b"\x0a" + varint(len(METADATA_KEY)) + METADATA_KEY.encode() + b"\x12" + varint(2) + b"{}"
    graph_size = 2_200_000_000
    path = tmp_path / "huge.onnx"
    with open(path, "wb") as f:
        f.write(b"\x08\x08" + b"\x3a" + varint(graph_size))  # ir_version 8, graph: field 7, length-delimited
        f.seek(graph_size, os.SEEK_CUR)
        f.write(b"\x72" + varint(len(entry)) + entry)  # metadata_props: field 14
    assert os.path.getsize(path) > 2**31
    assert read_metadata(path) == {}


@pytest.mark.parametrize("content", [b"", b'{"not": "onnx"}', b"\x00\x01\x02\x03" * 50, b"\x08\x08",
                                     b"\x08\x08\x3a\xff\xff\xff\x0f abc"])
def test_what_is_not_onnx_is_one_line(tmp_path, content):
    path = tmp_path / "m.onnx"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=r"m\.onnx is not an ONNX model$"):
        read_metadata(path)


def test_a_cut_export_is_not_onnx(tmp_path, device_files):
    data = (device_files / "pruned.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NotOnnx):
        onnx_metadata_props(path)


def test_missing_key_missing_file_and_sidecars(tmp_path):
    path = tmp_path / "plain.onnx"
    onnx.save(small_model({"other": "x"}), str(path))
    with pytest.raises(UsageError, match="has no 'tdm_edge' metadata"):
        read_metadata(path)
    with pytest.raises(UsageError, match="cannot read .*nothing.onnx"):
        read_metadata(tmp_path / "nothing.onnx")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    with pytest.raises(UsageError, match=r"expected .*m\.engine\.json beside it"):
        engine_metadata(engine)
    (tmp_path / "m.engine.json").write_text(json.dumps({"trt_version": "10.3", "metadata": {"model": {"name": "a"}}}))
    assert model_metadata(engine) == {"model": {"name": "a"}}
