import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tdm_edge.metadata import METADATA_KEY

META = {"format": "tdm-edge-onnx/1", "weights": "random",
        "reduction": {"method": "bat", "keep_rate": 0.7, "stage_tokens": [65, 46, 33], "block_tokens": [65] * 4},
        "preprocessing": {"input_size": [3, 32, 32]}, "labels": None}


def write_onnx(path, *, weights="random", dtype=np.float32, qdq: bool = False):
    """A 4-node ONNX (MatMul, TopK, Identity, Softmax) carrying tdm-edge metadata; ``qdq`` adds Q/DQ nodes."""
    w = numpy_helper.from_array(np.ones((4, 4), dtype), "w")
    k = numpy_helper.from_array(np.array([2], np.int64), "k")
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    nodes = [helper.make_node("MatMul", ["input", "w"], ["mm"], name="/mm"),
             helper.make_node("TopK", ["mm", "k"], ["vals", "idx"], name="/blocks.3/TopK"),
             helper.make_node("Identity", ["vals"], ["ident"], name="/ident"),
             helper.make_node("Softmax", ["ident"], ["logits"], name="/softmax")]
    inits = [w, k]
    if qdq:
        inits += [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes = [helper.make_node("QuantizeLinear", ["x0", "s", "z"], ["xq"], name="/q"),
                 helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["input"], name="/dq")] + nodes
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x0" if qdq else "input", elem, [1, 4])],
                              [helper.make_tensor_value_info("logits", elem, [1, 2])], inits)
    model = helper.make_model(graph)
    meta = dict(META, weights=weights)
    helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    onnx.save(model, str(path))
    return path


@pytest.fixture
def tiny_onnx(tmp_path):
    return write_onnx(tmp_path / "m.onnx")
