# Set-up, demo and tests. Torch is pinned here (CPU wheel on local disk); pyproject keeps a range.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_PIN)"
	$(BIN)/pip install --quiet "$(TORCH_PIN)" -e ".[test,baselines]"
	command -v dciodvfy >/dev/null || { apt-get update -qq && apt-get install -y -qq dicom3tools >/dev/null; } || echo "dicom3tools could not be installed: the dciodvfy test will skip"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/ldct-invrep demo --output out/demo

test: setup
	$(BIN)/python -m pytest -q

# everything except the tests marked slow (training runs, bundles, BM3D tables)
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

bench: setup
	$(BIN)/python benchmarks/train_speed.py --presets paper lite --threads 2
	$(BIN)/python benchmarks/denoise_speed.py --threads 2 --self-ensemble 1 8
	$(BIN)/python benchmarks/memory_scaling.py --threads 2

clean:
	rm -rf $(VENV) out .pytest_cache
