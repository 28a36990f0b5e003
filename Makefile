# Two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(BIN)):$(PATH)
SAMPLE := examples/sample_chat.jsonl

.PHONY: demo test build lint rust-test py-test bench fuzz clean browser

$(BIN)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements-dev.txt
	touch $@

# The release extension (LTO, one codegen unit), installed into the virtualenv.
build: $(BIN)/.installed
	$(BIN)/maturin develop --release --quiet

demo: build
	# The main job: a one-pass audit of the bundled sample (validation, exact tokens, duplicates, cost).
	$(BIN)/tokenlens --version
	# The sample holds a few deliberately broken lines, so tokenlens exits 1 (findings) here.
	$(BIN)/tokenlens scan $(SAMPLE) --model gpt-4o-mini --context-limit 2048 --html sample-report.html --force; \
		test $$? -le 1
	@echo "The HTML report is in sample-report.html"

lint: $(BIN)/.installed
	cargo fmt --check
	cargo clippy --all-targets --features python -- -D warnings
	$(BIN)/ruff check python tests benches examples
	$(BIN)/ruff format --check python tests benches examples
	$(BIN)/mypy
	$(PYTHON) -m mypy.stubtest tokenlens._core

rust-test:
	cargo test --lib

py-test: build browser
	$(PYTHON) -m pytest

test: build lint rust-test py-test

# Benchmarks against the peers on a ~1 GB corpus made from ../shared/data, in bench-data/ (git-ignored).
# TOKENLENS_BENCH_MB sets the corpus size, TOKENLENS_BENCH_LARGE=0 skips the large files of the memory checks (4x, 2x).
$(BIN)/.bench-installed: $(BIN)/.installed benches/requirements.txt
	$(PYTHON) -m pip install --quiet -r benches/requirements.txt
	touch $@

bench: build $(BIN)/.bench-installed
	mkdir -p bench-data
	test -x /usr/bin/time || (apt-get update -qq && apt-get install -y -qq time)
	$(PYTHON) -m pytest benches -p no:cacheprovider --benchmark-only --benchmark-sort=name \
		--benchmark-columns=min,rounds --benchmark-json=bench-data/benchmark.json

# Headless Chromium for the HTML report's rendering test (Debian's package; needs root).
browser:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

# libFuzzer targets (fuzz/, a crate of its own) for FUZZ_SECONDS each; installs cargo-fuzz if missing.
# cargo-fuzz needs a nightly compiler: the nightly toolchain if installed, else stable with RUSTC_BOOTSTRAP=1.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := parse_line reader pretokenize
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then tc=+nightly; else tc=; export RUSTC_BOOTSTRAP=1; fi; \
	for target in $(FUZZ_TARGETS); do \
		cargo $$tc fuzz run -O $$target -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -max_len=4096 || exit 1; \
	done

clean:
	rm -rf $(VENV) target
