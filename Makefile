# One entry point for a fresh machine: `make demo` and `make test` create .venv if
# missing and install torch first (the CPU build), then the package with pinned versions.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rsp-probe-installed
# Where torch's build comes from. PyPI's Linux torch is the CUDA build, so torch is installed
# with PyTorch's CPU wheel index as an extra index: pip prefers its 2.x.y+cpu to PyPI's
# 2.x.y. For a GPU: make install TORCH_INDEX=https://download.pytorch.org/whl/cu128 (any
# CUDA index of pytorch.org). An index that cannot be reached (an offline machine) is left
# out with a note, and pip's own sources decide (here: a local CPU wheel).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_VERSION = $$(grep '^torch==' constraints.txt | cut -d= -f3)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint bench figures theory readme-tables clean-venv lab mutate

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if [ -n "$(TORCH_INDEX)" ] && $(BIN)/python -c "import urllib.request; \
	  urllib.request.urlopen('$(TORCH_INDEX)/torch/', timeout=10)" 2>/dev/null; then \
	  $(BIN)/python -m pip install -q --disable-pip-version-check \
	    --extra-index-url "$(TORCH_INDEX)" "torch==$(TORCH_VERSION)"; \
	else \
	  echo "note: $(TORCH_INDEX) cannot be reached; torch comes from pip's own sources"; \
	  $(BIN)/python -m pip install -q --disable-pip-version-check "torch==$(TORCH_VERSION)"; \
	fi
	$(BIN)/python -W ignore -c "import torch; print('torch', torch.__version__, \
	  'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU build')"
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rsp-probe entropy --out runs/demo --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check rsp_probe tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/sampler.py

figures: $(STAMP)
	$(BIN)/rsp-probe reproduce --out runs/reproduce --figures figures

LAB_STAMP := $(VENV)/.rsp-probe-notebooks-installed

$(LAB_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,notebooks]'
	touch $(LAB_STAMP)

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab notebooks/

# Mutation testing of the modules that compute reported numbers ([tool.mutmut] in
# pyproject.toml) with the fast reference tests; minutes to an hour on 2 cores. Scope it with
# MUTANTS='rsp_probe.tasks.passk*' (mutant-name globs). Results go to benchmarks/MUTATION.md.
MUTANTS ?=
mutate: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,mutation]'
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2 $(MUTANTS)
	$(BIN)/python benchmarks/mutation_report.py --update

clean-venv:
	rm -rf $(VENV)
