# shiftlab: `make demo` sets everything up and runs the quickstart; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Where no GPU is present, a CPU build of torch is installed first, so that the package's own
# torch range is already satisfied and pip never pulls a multi-GB CUDA build. Off this
# project's machines, point TORCH_INDEX at https://download.pytorch.org/whl/cpu.
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format bench docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "GPU found: torch comes from the package requirements"; \
	else \
		echo "no GPU: installing the CPU build of torch $(TORCH_VERSION)"; \
		$(BIN)/pip install -q "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)); \
	fi
	$(BIN)/pip install -q -e ".[dev]"
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
