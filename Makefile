# The two entry points: `make demo` (the whole pipeline that exists, offline) and `make test`.
# Both create .venv with the pinned versions in constraints.txt on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The device side (build/run/bench of files, check, doctor) on Python 3.8, as on JetPack 5: a second venv with the
# device install only (`pip install .[ort]`, no torch) from pyenv's 3.8. `make test` runs both suites.
PYTHON38 ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.8*/bin/python) \
                        $(wildcard $(HOME)/.pyenv/versions/3.8*/bin/python) $(shell command -v python3.8))
DEVICE_VENV := build/venv-py38
DEVICE_PY := $(DEVICE_VENV)/bin/python
DEVICE_STAMP := $(DEVICE_VENV)/.installed
DEVICE_FIXTURES := build/device-fixtures
# the contract and the device commands (tests/device), the engine builder and the TensorRT runner against their
# stand-ins, the lint, the bench statistics. A test that itself exports with torch is skipped there
# (tests/device/workstation_skip.py; a device module importing torch still fails); left out by name: tests that
# need numpy 2, cuda-python or matplotlib installed (they run in the main suite)
DEVICE_TESTS := tests/test_device_side.py tests/device tests/engine/test_build.py tests/engine/test_versions.py \
                tests/engine/test_cache.py tests/engine/test_trt_options.py tests/runners/test_tensorrt.py tests/lint \
                tests/bench/test_stats.py tests/test_errors.py tests/video/test_quantiles.py \
                tests/video/test_pipelines.py tests/video/test_v4l2.py tests/video/test_overlay.py
DEVICE_PYTEST := -q -p no:cacheprovider -p no:warnings -p tests.device.workstation_skip \
	--deselect tests/engine/test_build.py::test_int8_and_options_on_10 \
	--deselect tests/engine/test_versions.py::test_backend_versions_name_the_software_and_the_gpu \
	--deselect tests/bench/test_stats.py::test_bench_plot_shows_whole_bars_and_keeps_the_legend_off_them

.PHONY: demo test test-fast test-device venv venv-device clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar on -c constraints.txt -e ".[dev]"
	$(PY) -c "import torch, torchvision, timm, onnx, onnxruntime; print('env ok: torch', torch.__version__, 'torchvision', torchvision.__version__, 'timm', timm.__version__)"
	touch $(STAMP)

venv: $(STAMP)

$(DEVICE_STAMP): pyproject.toml
	@test -n "$(PYTHON38)" || { echo "make: no Python 3.8 for the device suite (pyenv install 3.8, or PYTHON38=...)"; exit 2; }
	$(PYTHON38) -m venv $(DEVICE_VENV)
	$(DEVICE_PY) -m pip install --quiet ".[ort]" "numpy<2" opencv-python-headless pytest vermin
	$(DEVICE_PY) -c "import importlib.util as u, sys, numpy, onnxruntime; assert u.find_spec('torch') is None; print('device env ok: Python', sys.version.split()[0], 'numpy', numpy.__version__, 'onnxruntime', onnxruntime.__version__, '(no torch)')"
	touch $(DEVICE_STAMP)

venv-device: $(DEVICE_STAMP)

# the fixtures (two tiny exports and a clip) are written with .venv's torch; the 3.8 venv only reads them
test-device: $(STAMP) $(DEVICE_STAMP)
	$(PY) -m tests.device.fixtures $(DEVICE_FIXTURES) > /dev/null
	TDM_DEVICE_FIXTURES=$(DEVICE_FIXTURES) $(DEVICE_PY) -m pytest $(DEVICE_PYTEST) $(DEVICE_TESTS)

demo: $(STAMP)
	$(PY) -m tdm_edge.demo

# everything, slow and network tests included: what CI runs
test: $(STAMP) $(DEVICE_STAMP)
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory test-device

# the developer's loop: the main suite without the tests marked slow (each > ~3 s here; `pytest --collect-only -m
# slow -q` lists them), under 2 minutes on 2 cores; `make test` still runs them
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -p no:cacheprovider

clean:
	rm -rf $(VENV) build *.egg-info
