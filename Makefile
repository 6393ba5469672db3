# fmdenoise: the two commands a new user needs are `make demo` and `make test`.
# Each creates .venv (if missing) with the exact versions in constraints.txt.
#
# GPU machines: pick your CUDA build of torch 2.13, e.g.
#   make venv TORCH_INDEX=https://download.pytorch.org/whl/cu126
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
CORES ?= 2
SNAKEMAKE := $(VENV)/bin/snakemake

.PHONY: venv demo test test-fast lint format bench clean-demo plan rehearsal demo-checkpoints docs

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,slurm]"
	touch $@

## The embedded demo study, end to end, on $(CORES) cores (no network, no GPU needed).
demo: venv
	$(SNAKEMAKE) --cores $(CORES) --configfile demo/config.yaml

## Regenerate the demo's shipped pretrained checkpoints (demo/pretrained/) with the pretrain
## rule and the recipe in demo/config.yaml; prints the sha256 to put into demo/config.yaml.
DEMO_CKPTS := drunet restormer kbnet
demo-checkpoints: venv
	$(SNAKEMAKE) --cores $(CORES) $(DEMO_CKPTS:%=results/demo-pretrain/pretrained/%.pt) \
		--configfile demo/config.yaml demo/pretrain.yaml
	mkdir -p demo/pretrained
	for m in $(DEMO_CKPTS); do cp results/demo-pretrain/pretrained/$$m.pt demo/pretrained/$$m.pt; done
	cd demo/pretrained && sha256sum $(DEMO_CKPTS:%=%.pt)

## Every test (unit, faults, real snakemake runs of the demo, SLURM), after the linters; the
## SLURM tests run in a second pytest process beside the others (tests/run_all.sh).
test: venv lint docs
	tests/run_all.sh $(PY)

## The documentation site (docs/, MkDocs Material) into site/; the generated references
## (docs/reference/: configuration keys, command line, rule graph) are rewritten first.
## --strict: a broken link or a page missing from the nav fails the build.
docs: venv
	$(PY) docs/gen_reference.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

## The fast unit tests only (the default pytest selection: not marked slow).
test-fast: venv
	$(PY) -m pytest -q

## The linters and the type checker (the hooks of .pre-commit-config.yaml), and Snakemake's.
lint: venv
	$(VENV)/bin/ruff check src tests workflow_scripts benchmarks docs
	$(VENV)/bin/ruff format --check src tests workflow_scripts benchmarks docs
	$(VENV)/bin/snakefmt --check Snakefile rules
	$(VENV)/bin/mypy
	$(SNAKEMAKE) --lint --configfile demo/config.yaml

format: venv
	$(VENV)/bin/ruff check --fix src tests workflow_scripts benchmarks
	$(VENV)/bin/ruff format src tests workflow_scripts benchmarks
	$(VENV)/bin/snakefmt Snakefile rules

## What the real study costs, before anything runs (jobs, GPU/CPU-hours, memory, disk).
plan: venv
	$(VENV)/bin/fmdenoise plan config.yaml

## The real config end to end on synthetic data of its real shape (local HTTP server).
## Reduced by default; e.g. make rehearsal REHEARSAL_ARGS="--datasets nucleus --scale 0.25"
REHEARSAL_ARGS ?= --reduced
rehearsal: venv
	$(VENV)/bin/fmdenoise rehearse config.yaml --cores $(CORES) $(REHEARSAL_ARGS)

bench: venv
	$(PY) benchmarks/models.py

clean-demo:
	rm -rf results/demo
