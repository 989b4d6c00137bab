# Two commands for a fresh machine with Python 3.11+:  make book   and   make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The book and the tests run offline on the stand-in unless told otherwise
# (D2LHELPERS_DATA_SOURCE=auto uses the real hot dog photos and ImageNet weights when reachable).
export D2LHELPERS_DATA_SOURCE ?= standin
export D2LHELPERS_DATA ?= $(CURDIR)/.data
export PYTHONHASHSEED := 0

.PHONY: book test venv lint unit fast widgets7 integration notebooks bench bench-install clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Fast unit tests only (about a minute).
unit fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

# The widget tests again, against ipywidgets 7.7.1 (what Colab ships), in a side folder.
IPYW7 := $(VENV)/ipywidgets7
widgets7: $(STAMP)
	PYTHON=$(BIN)/python bash scripts/ipywidgets7_env.sh $(IPYW7)
	PYTHONPATH=$(IPYW7) $(BIN)/python -m pytest -q tests/test_widgets.py

# The benchmark's reference side needs d2l 1.0.3, installed without its pins (they would
# downgrade numpy and matplotlib), and the packages its import needs.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) benchmarks/requirements.txt
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps d2l==1.0.3
	touch $@

bench-install: $(BENCH_STAMP)

# A/B benchmark: d2l's train_ch13 against d2lhelpers (about 15 minutes on an idle 2-core CPU).
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.bench

# The lesson itself on the stand-in (fine-tuned beats scratch), and a smoke run of the benchmark.
integration: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m pytest -m slow -q

# Every notebook in chapters/ executed by nbval; checked cells compare their stored outputs.
notebooks: $(STAMP)
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:randomly -q chapters

test: lint unit widgets7 integration notebooks

clean:
	rm -rf _build .pytest_cache .ruff_cache
