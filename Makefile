# Two entry points (see README): `make run` (the main job) and `make test`.
SHELL := /bin/bash
OUT ?= out
DATA_DIR ?= $(if $(CIFAR10_DIR),$(CIFAR10_DIR),data/cifar-10-batches-bin)

.PHONY: run test setup build bench

setup:
	@scripts/setup.sh

build: setup
	cargo build --release --locked

# The main job: find (or fetch) the data, reproduce both assignments, write the report.
run: build
	@if [ ! -e "$(DATA_DIR)" ]; then ./target/release/shallow data fetch --dest data; fi
	CIFAR10_DIR="$(DATA_DIR)" ./target/release/shallow data info
	CIFAR10_DIR="$(DATA_DIR)" ./target/release/shallow experiment all --out $(OUT)

# The whole test suite: formatting, lints, every test (cargo nextest where it is
# installed, else cargo test: a fresh machine with only rustup's toolchain has no nextest).
test: setup
	@scripts/pyenv.sh || echo "make test: no Python environment (scripts/pyenv.sh failed): the model checks against NumPy and onnxruntime will skip"
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	@if cargo nextest --version >/dev/null 2>&1; then \
	  echo "cargo nextest run --locked --no-fail-fast"; cargo nextest run --locked --no-fail-fast; \
	else \
	  echo "make test: cargo-nextest is not installed, running the same tests with cargo test"; \
	  cargo test --locked --no-fail-fast; \
	fi

bench: setup
	cargo bench --locked
