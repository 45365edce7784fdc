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

# Reinstalls only when the pins change. pip would compile the packages' bytecode one file at a time;
# compileall does it on every core (jobs need it written beforehand where PYTHONDONTWRITEBYTECODE is set),
# leaving out the packages' own test folders, which no job imports. A few files for newer Pythons compile
# under neither (torch's py312 helpers): the leading - ignores compileall's status.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e '.[test]'
	-$(BIN)/python -m compileall -qq -j 0 -x '/tests/' $(VENV)/lib
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
