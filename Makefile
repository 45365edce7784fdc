# Two set-up commands (README): `make run` builds the whole DAG on config/config.yaml,
# `make test` runs the test suite. Both create .venv when missing and reuse it after.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test dry-run lint setup clean slurm-profile

setup: $(STAMP)

# Reinstalls only when the pins change. pip would compile the bytecode of every installed file, one at a
# time (minutes); jobs import about a third of them. One process imports what jobs and tests import (every
# gensynth module, the libraries they import inside functions, Snakemake, pytest) with bytecode writing on,
# also where PYTHONDONTWRITEBYTECODE is set: nothing else is compiled ahead.
WARM_IMPORTS := import importlib, pkgutil, gensynth; \
	[importlib.import_module(m.name) for m in pkgutil.walk_packages(gensynth.__path__, "gensynth.")]; \
	import diffusers.training_utils, matplotlib.pyplot, scipy.stats, sklearn.datasets, sklearn.manifold, sklearn.model_selection; \
	from diffusers import AutoencoderKL, DDIMPipeline, StableDiffusionPipeline, UNet2DConditionModel; \
	from transformers import CLIPTextModel, CLIPTokenizer; \
	import pytest, xdist, snakemake.api, snakemake.cli, snakemake.dag, snakemake.report, snakemake.workflow
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e '.[test]'
	env -u PYTHONDONTWRITEBYTECODE TRANSFORMERS_VERBOSITY=error $(BIN)/python -c '$(WARM_IMPORTS)'
	touch $@

run: $(STAMP)
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)

# Lint first (seconds): snakefmt, ruff format and ruff check, pinned in the test extras. Three pytest workers on two cores:
# one runs the whole DAG on tests/configs/dag.yaml and every test of its results (tests/conftest.py's
# scheduler), the others the rest; most tests wait on subprocesses, and a third worker keeps both cores
# busy, also when another process competes for them.
test: $(STAMP) lint
	$(BIN)/python -m pytest -n 3 --durations=25

dry-run: $(STAMP)
	$(BIN)/snakemake -n -p --cores $(CORES)

lint: $(STAMP)
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/ruff format --check
	$(BIN)/ruff check

# `snakemake --profile slurm` looks for the profile in ~/.config/snakemake/, not in profiles/: link it there.
slurm-profile:
	mkdir -p $(HOME)/.config/snakemake
	ln -sfn $(CURDIR)/profiles/slurm $(HOME)/.config/snakemake/slurm
	@echo "snakemake --profile slurm now uses $(CURDIR)/profiles/slurm"

clean:
	rm -rf results logs benchmarks .snakemake
