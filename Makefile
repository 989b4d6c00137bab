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

.PHONY: book test venv lint unit fast integration notebooks clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Fast unit tests only (about a minute).
unit fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

# The lesson itself on the stand-in: fine-tuned beats scratch.
integration: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

# Every notebook in chapters/ executed by nbval; checked cells compare their stored outputs.
notebooks: $(STAMP)
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:randomly -q chapters

test: lint unit integration notebooks

clean:
	rm -rf _build .pytest_cache .ruff_cache
