# Two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(BIN)):$(PATH)
SAMPLE := examples/sample_chat.jsonl

.PHONY: demo test build lint rust-test py-test bench fuzz clean

$(BIN)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt
	touch $@

# The release extension (LTO, one codegen unit), installed into the virtualenv.
build: $(BIN)/.installed
	$(BIN)/maturin develop --release --quiet

demo: build
	$(BIN)/tokenlens --version
	# The sample holds a few deliberately broken lines, so tokenlens exits 1 (findings) here.
	$(BIN)/tokenlens count $(SAMPLE) --encoding cl100k_base; test $$? -le 1

lint: $(BIN)/.installed
	cargo fmt --check
	cargo clippy --all-targets --features python -- -D warnings
	$(BIN)/ruff check python tests benches examples
	$(BIN)/ruff format --check python tests benches examples
	$(BIN)/mypy
	$(PYTHON) -m mypy.stubtest tokenlens._core

rust-test:
	cargo test --lib

py-test: build
	$(PYTHON) -m pytest

test: build lint rust-test py-test

clean:
	rm -rf $(VENV) target
