# The two entry points: `make demo` (the whole pipeline that exists, offline) and `make test`.
# Both create .venv with the pinned versions in constraints.txt on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar on -c constraints.txt -e ".[dev]"
	$(PY) -c "import torch, torchvision, timm, onnx, onnxruntime; print('env ok: torch', torch.__version__, 'torchvision', torchvision.__version__, 'timm', timm.__version__)"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m tdm_edge.demo

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
