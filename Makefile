# Set-up, demo and tests. Torch is pinned here (CPU wheel on local disk); pyproject keeps a range.
# `setup` is what `make demo` and the notebook need (no root, no non-commercial packages); `test-setup` adds
# the test tools, the optional BM3D baseline (non-commercial licence) and dicom3tools (apt-get, root).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: setup test-setup demo notebook test test-fast bench clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_PIN)"
	$(BIN)/pip install --quiet "$(TORCH_PIN)" -e ".[notebook]"
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet "$(TORCH_PIN)" -e ".[notebook,test,baselines]"
	command -v dciodvfy >/dev/null || { apt-get update -qq && apt-get install -y -qq dicom3tools >/dev/null; } || echo "dicom3tools could not be installed: the dciodvfy test will skip"
	touch $(TEST_STAMP)

setup: $(STAMP)

test-setup: $(TEST_STAMP)

demo: setup
	$(BIN)/ldct-invrep demo --output out/demo

notebook: setup
	$(BIN)/jupyter nbconvert --to notebook --execute docs/notebooks/hu_window_comparison.ipynb --output-dir out/notebook

test: test-setup
	$(BIN)/python -m pytest -q

# everything except the tests marked slow (training runs, bundles, BM3D tables)
test-fast: test-setup
	$(BIN)/python -m pytest -q -m "not slow"

bench: setup
	$(BIN)/pip install --quiet "$(TORCH_PIN)" -e ".[bench]"
	$(BIN)/python benchmarks/train_speed.py --presets paper lite --threads 2
	$(BIN)/python benchmarks/denoise_speed.py --threads 2 --self-ensemble 1 8
	$(BIN)/python benchmarks/memory_scaling.py --threads 2
	$(BIN)/python benchmarks/startup_time.py

clean:
	rm -rf $(VENV) out .pytest_cache
