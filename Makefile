# Run `make` (or `make help`) to list the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
ARGS ?=
# Where `make run-local` writes (the shipped config's output_root); `make clean` cleans it.
OUTPUTS ?= outputs

# A Python 3.10 interpreter: $(PYTHON) if given, else python3.10 on PATH, else
# pyenv's versions folder. Each candidate is run, because pyenv's shim exists on
# PATH but fails unless that version is active.
define find_python
for p in $(PYTHON) python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10; do \
  if "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; then \
    echo "$$p"; exit 0; fi; \
done; exit 1
endef

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements.lock
	@py=$$($(find_python)) || { echo "error: Python 3.10 not found; install it (e.g. 'pyenv install 3.10') or pass PYTHON=/path/to/python3.10" >&2; exit 1; }; \
	if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then \
	  rm -rf $(VENV) && "$$py" -m venv $(VENV); fi
	$(PY) -m pip install -q "uv==$(UV_VERSION)"
	@# Precompiled bytecode: with PYTHONDONTWRITEBYTECODE set, Python would
	@# recompile TF, TFX and Beam from source in every process, most of a run's
	@# start-up. uv compiles what it installs on every core, sooner than a
	@# compileall after it.
	@# --no-deps: the lock is the whole environment, on purpose short of what
	@# `make lock` leaves out (LOCK_EXCLUDED).
	$(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode --no-deps -r requirements.lock
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv and install the pinned stack and this project (idempotent)

# Test, bench and lint tools (the `dev` extra), pinned with the stack.
DEV_STAMP := $(VENV)/.installed-dev

$(DEV_STAMP): requirements-dev.lock $(STAMP)
	$(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode --no-deps -r requirements-dev.lock
	@touch $@

.PHONY: lint
lint: $(DEV_STAMP) ## Lint (ruff check) and check the formatting (ruff format); make test runs it first
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: format
format: $(DEV_STAMP) ## Apply ruff's safe fixes and its formatter
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# kfp 2.x cannot share TFX's environment (its protobuf and kfp-pipeline-spec
# pins conflict); the tests load the compiled v2 spec with it from here.
KFP2 := build/kfp2
KFP2_STAMP := $(KFP2)/.installed

$(KFP2_STAMP): tests/kfp2/requirements.lock $(STAMP)
	rm -rf $(KFP2) && $(VENV)/bin/uv venv -q --python $(PY) $(KFP2)
	$(VENV)/bin/uv pip install -q --python $(KFP2)/bin/python --compile-bytecode -r tests/kfp2/requirements.lock
	@touch $@

# Debian's Chromium: the tests render the run report in it, as a reader would.
CHROMIUM_STAMP := build/.chromium

$(CHROMIUM_STAMP):
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium (the report's browser test needs it)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || { echo "error: install Debian's chromium package (apt-get install chromium)" >&2; exit 1; }
	@mkdir -p build && touch $@

.PHONY: kfp2-env
kfp2-env: $(KFP2_STAMP) ## Install the kfp 2.x SDK in build/kfp2 (the tests load the v2 spec with it)

# `run` exits 3 (trained, not pushed) or 4 (nothing new) when all went
# well but no model was pushed: for make, as for a person, not a failure.
define pipeline_run
$(PY) -m pipeline run $(1) $(ARGS); code=$$?; [ $$code -eq 0 ] || [ $$code -eq 3 ] || [ $$code -eq 4 ] || exit $$code
endef

.PHONY: run-local
run-local: $(STAMP) ## Run the whole pipeline locally on the bundled data (extra flags: ARGS="--set k=v")
	@$(call pipeline_run,)

.PHONY: run-beam
run-beam: $(STAMP) ## Run the whole pipeline with TFX's BeamDagRunner (extra flags: ARGS="--set beam.runner=portable")
	@$(call pipeline_run,--runner beam)

.PHONY: tensorboard
tensorboard: $(STAMP) ## Serve every run's training curves side by side, named by run id (http://localhost:6006)
	$(PY) -m pipeline tensorboard $(ARGS)

.PHONY: image
image: $(STAMP) ## Build the pipeline image with docker: IMAGE=registry/name:tag [ARGS="--config FILE"]
	@if [ -z "$(IMAGE)" ]; then echo "error: name the image: make image IMAGE=registry/name:tag" >&2; exit 2; fi
	$(PY) -m pipeline image --tag $(IMAGE) $(ARGS)

.PHONY: compile-kubeflow
compile-kubeflow: $(STAMP) ## Write the Kubeflow v1 (Argo) and v2 pipeline specs under <output_root>/kubeflow/
	$(PY) -m pipeline compile --target kubeflow $(ARGS)
	$(PY) -m pipeline compile --target kubeflow-v2 $(ARGS)

# Test files run in parallel; the tests of one file share pipeline outputs, so
# a file stays on one worker. One worker per core: the e2e files' pipelines
# already use more than one core at times (Transform beside StatisticsGen, a
# cluster's replicas, several projects at once), so a worker more than cores
# cost more CPU in contention than it found idle.
TEST_WORKERS ?= $(shell nproc)
# Files in the order tests/conftest.py gives (slowest first), not by test count.
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: test
test: lint $(KFP2_STAMP) $(CHROMIUM_STAMP) ## Lint, then run the test suite (all but the KFP backend tier)
	$(PYTEST) -m "not kfp_backend" $(ARGS)

# Its own tier: five pipeline runs, one after another, each task a process.
.PHONY: test-kfp
test-kfp: $(DEV_STAMP) $(KFP2_STAMP) ## Run the v2 spec on an emulated KFP 2.x backend, run after run (needs root: unshare)
	$(PY) -m pytest -q -rP -m kfp_backend $(ARGS)

.PHONY: test-fast
test-fast: $(DEV_STAMP) $(KFP2_STAMP) ## Run the tests that do not run the whole pipeline
	$(PYTEST) -m "not e2e" $(ARGS)

.PHONY: test-e2e
test-e2e: $(DEV_STAMP) $(CHROMIUM_STAMP) ## Run only the end-to-end pipeline tests
	$(PYTEST) -m "e2e and not kfp_backend" $(ARGS)

.PHONY: bench
bench: $(DEV_STAMP) ## Benchmark against TFX's own taxi pipeline; writes bench/results/latest.json and docs/performance.md (ARGS="--reps 1")
	$(PY) -m bench $(ARGS)

.PHONY: bench-tables
bench-tables: $(DEV_STAMP) ## init + run on public tables against scikit-learn; writes bench/results/tables.json and the README's table
	$(PY) -m bench.tables $(ARGS)

.PHONY: schema
schema: $(STAMP) ## Regenerate the bundled taxi schema from the bundled data (review the diff)
	$(PY) -m pipeline schema --force $(ARGS)

.PHONY: init
init: $(STAMP) ## Start a project for your own table: ARGS="DIR --data CSV --label COLUMN --task binary|multiclass|regression"
	$(PY) -m pipeline init $(ARGS)

# Left out of the locks: rfc3987-syntax (and lark, its only user) comes from
# jupyter-events' jsonschema[format-nongpl]; jsonschema imports it when present,
# and its import builds a Lark grammar, 3.6 s in every process that imports
# TFX (tfx.components -> kubernetes_validate -> jsonschema). Nothing here
# validates IRI formats; jsonschema skips that check without it.
LOCK_EXCLUDED := --no-emit-package rfc3987-syntax --no-emit-package lark

.PHONY: lock
lock: $(STAMP) ## Re-resolve requirements.lock and requirements-dev.lock from pyproject.toml
	$(VENV)/bin/uv pip compile pyproject.toml --python $(PY) --no-header -q $(LOCK_EXCLUDED) -o requirements.lock
	sed -i '1i # Fully pinned dependencies of pyproject.toml; regenerate with `make lock`.' requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev -c requirements.lock --python $(PY) --no-header -q $(LOCK_EXCLUDED) -o requirements-dev.lock
	sed -i '1i # requirements.lock plus the dev extra (tests, bench, lint); regenerate with `make lock`.' requirements-dev.lock

.PHONY: clean
clean: ## Remove what a run regenerates (artifacts, metadata cache); keeps served models and run records
	rm -rf $(OUTPUTS)/pipeline $(OUTPUTS)/metadata.sqlite $(OUTPUTS)/kubeflow $(OUTPUTS)/tensorboard
	@if [ -d $(OUTPUTS)/serving ]; then echo "kept $(OUTPUTS)/serving (served models; delete them only with: make delete-served SERVING_DIR=$(OUTPUTS)/serving)"; fi
	@if [ -d $(OUTPUTS)/runs ]; then echo "kept $(OUTPUTS)/runs (run records and logs)"; fi
	@if [ -d $(OUTPUTS)/drift-acceptances ]; then echo "kept $(OUTPUTS)/drift-acceptances (drift accepted with --accept-drift)"; fi

.PHONY: delete-served
delete-served: ## Delete served models: SERVING_DIR=path must name the directory
	@if [ -z "$(SERVING_DIR)" ]; then echo "error: name the serving directory to delete: make delete-served SERVING_DIR=$(OUTPUTS)/serving" >&2; exit 2; fi
	rm -rf -- "$(SERVING_DIR)"

.PHONY: distclean
distclean: clean ## Remove regenerable outputs and .venv (served models and run records stay)
	rm -rf $(VENV)
