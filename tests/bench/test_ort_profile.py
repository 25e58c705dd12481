"""benchmarks/ort_profile.py's node matching on synthetic traces and on a real profile of a tiny BAT graph (the
statistics of tdm_edge.bench are tested in tests/bench)."""

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "ort_profile.py"


@pytest.fixture(scope="module")
def prof():
    spec = importlib.util.spec_from_file_location("ort_profile", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _event(name, op, shapes, dur):
    return {"cat": "Node", "name": f"{name}_kernel_time", "dur": dur,
            "args": {"op_name": op, "input_type_shape": [{"float": list(s)} for s in shapes]}}


def test_node_times_take_the_median_after_the_warm_up_and_ignore_other_events(prof):
    events = [_event("mm", "MatMul", [(1, 4, 8), (8, 2)], d) for d in (500, 10, 30, 20)]
    events += [{"cat": "Session", "name": "model_run", "dur": 9999},
               {"cat": "Node", "name": "mm_fence_before", "dur": 1},
               _event("tk", "TopK", [(1, 9), (1,)], 4), _event("tk", "TopK", [(1, 9), (1,)], 6)]
    times = {n.name: n for n in prof.node_times(events, skip=1)}
    assert times["mm"].us == 20.0 and times["mm"].op == "MatMul"
    assert times["mm"].inputs == ((1, 4, 8), (8, 2))
    assert times["tk"].us == 6.0  # one run left after skipping one


def test_compare_shares_equal_signatures_and_charges_the_surplus_to_the_model(prof):
    node = prof.NodeTime
    model = [node("a1", "Add", ((2, 3), (2, 3)), 5.0), node("a2", "Add", ((2, 3), (2, 3)), 7.0),
             node("t", "TopK", ((1, 9), (1,)), 3.0), node("g", "Gemm", ((4, 4), (4,)), 50.0)]
    reference = [node("r1", "Add", ((2, 3), (2, 3)), 6.0), node("rg", "Gemm", ((4, 4), (4,)), 40.0),
                 node("rs", "Slice", ((1, 9),), 2.0)]
    c = prof.compare(model, reference)
    assert [n.name for n in c.extra] == ["a2", "t"]  # the slower Add is the surplus one
    assert [n.name for n in c.missing] == ["rs"]
    assert (c.shared_us, c.shared_reference_us) == (55.0, 46.0)
    assert (c.total_us, c.reference_us, c.extra_us) == (65.0, 48.0, 10.0)
    assert c.by_op() == [("Add", 1, 7.0), ("TopK", 1, 3.0)]


def test_profile_of_a_real_bat_graph_finds_its_selection_ops_as_added_work(prof, tmp_path):
    import onnx

    from tdm_edge.bench.models import ideal_model
    from tdm_edge.export.onnx_export import export_onnx
    from tdm_edge.reduce.patch import patch_vit
    from ..conftest import tiny_vit

    paths = {}
    for key in ("bat", "ideal"):
        model = patch_vit(tiny_vit(), "bat", keep_rate=0.7)
        if key == "ideal":
            ideal_model(model)
        paths[key] = str(tmp_path / f"{key}.onnx")
        export_onnx(model, paths[key], batch=1, verify=False)
    bat, ideal = (prof.profile(paths[k], runs=3, warmup=1) for k in ("bat", "ideal"))
    c = prof.compare(bat, ideal)
    topk = sum(n.op_type == "TopK" for n in onnx.load(paths["bat"]).graph.node)
    assert topk == 6 * 3  # three BAT stages: decoupling, matching (3), DPC-kNN (2)
    assert dict((op, n) for op, n, _ in c.by_op())["TopK"] == topk  # the ideal has none; ORT fuses none
    assert not c.missing  # the ideal's own work (the same blocks on the same token counts) is all in BAT too
    assert len(c.extra) == len(bat) - len(ideal)
    assert not prof.compare(bat, bat).extra
