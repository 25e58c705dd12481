"""The benchmark scripts are not run in CI (they take minutes to hours), but each must still import: a renamed helper
in the package would otherwise break them silently until the next person tries to record a result."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 9


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_benchmark_script_imports_and_has_an_entry_point(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # scripts may share helpers, as `python benchmarks/x.py` allows
    spec = importlib.util.spec_from_file_location(f"_bench_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # module level only: every script guards its work with __main__
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"
    assert 'if __name__ == "__main__"' in script.read_text()
