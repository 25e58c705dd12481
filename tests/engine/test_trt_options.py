"""The TensorRT options of run, bench and tune (--plugins, --cuda; run: --engine-cache, --rebuild) reach the runner."""

import pytest

from tdm_edge.cli import main


class Reached(Exception):
    """Raised by a stand-in for the function the options must reach, carrying what it was given."""


def test_bench_of_engine_files_passes_plugins_and_the_binding(tmp_path, monkeypatch):
    import tdm_edge.bench.files as files

    def stand_in(*args, **kwargs):
        raise Reached(kwargs)

    monkeypatch.setattr(files, "run_file_bench", stand_in)
    with pytest.raises(Reached) as info:
        main(["bench", "--model", str(tmp_path / "p.engine"), "--baseline", str(tmp_path / "b.engine"),
              "--plugins", "libtdm_merge_plugin.so", "--plugins", "other.so", "--cuda", "pycuda"])
    kwargs = info.value.args[0]
    assert kwargs["plugins"] == ("libtdm_merge_plugin.so", "other.so") and kwargs["cuda"] == "pycuda"


def test_file_specs_carry_them_to_the_runner(tmp_path, monkeypatch):
    from tdm_edge.bench import files
    from tdm_edge.bench.backends import RunnerSpec

    monkeypatch.setattr(files, "model_metadata", lambda path: {"preprocessing": {"input_size": [3, 32, 32]},
                                                               "onnx": {"batch": 1}})
    for name in ("p.engine", "b.engine"):
        (tmp_path / name).write_bytes(b"stand-in engine")
    pruned = str(tmp_path / "p.engine")
    specs, *_ = files.plan(pruned, str(tmp_path / "b.engine"), None, None, 2, ("libp.so",), "cuda-python")
    assert specs["pruned"] == RunnerSpec("trt", pruned, "as built", 2, ("libp.so",), "cuda-python")
    made = {}
    import tdm_edge.runners.tensorrt as trt_runner

    monkeypatch.setattr(trt_runner, "TensorRTRunner", lambda path, **kw: made.update(path=path, **kw))
    specs["pruned"].make()
    assert made == {"path": pruned, "plugins": ["libp.so"], "cuda": "cuda-python"}


def test_run_options_reach_the_engine_cache_and_the_runner(tmp_path, monkeypatch):
    import argparse

    from tdm_edge.engine import cache

    seen = {}
    monkeypatch.setattr(cache, "cached_engine", lambda onnx, **kw: seen.update(onnx=onnx, **kw) or "x.engine")
    args = argparse.Namespace(engine_cache=str(tmp_path), rebuild=True, plugins=["libp.so"], cuda="pycuda")
    assert cache.engine_for_args("m.onnx", args) == "x.engine"
    assert seen == {"onnx": "m.onnx", "precision": None, "cache_dir": str(tmp_path), "rebuild": True,
                    "plugins": ["libp.so"]}
    assert cache.runner_options(args) == {"plugins": ["libp.so"], "cuda": "pycuda"}
    assert cache.runner_options(argparse.Namespace()) == {"plugins": [], "cuda": "auto"}
