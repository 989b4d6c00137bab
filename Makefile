# Two commands for a fresh machine with Python 3.11+:  make book   and   make test
PYTHON ?= python3
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The book and the tests run offline on the stand-in unless told otherwise
# (D2LHELPERS_DATA_SOURCE=auto uses the real hot dog photos and ImageNet weights when reachable).
export D2LHELPERS_DATA_SOURCE ?= standin
export D2LHELPERS_DATA ?= $(CURDIR)/.data
export PYTHONHASHSEED := 0
# torch's OpenMP threads sleep when they wait instead of spinning: beside one busy process, a
# training loop kept 60% of its speed instead of 30% (33% with ACTIVE), at a cost of about 15%
# when the machine is otherwise idle (benchmarks/results/under-load.md). It must be set before
# torch is imported, so it is set here for every kernel that make starts; for your own kernel,
# start Jupyter with it set (see the README).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: book test venv lint unit fast widgets7 integration notebooks bench bench-install clean \
	assets browser-deps browser colab-check gpu-check gpu-check-dry gpu-carry oldest real-check \
	budget book-checks standin-model jupyterlab-check classic-check

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# The pages serve require.js, the ipywidgets HTML manager and MathJax themselves (no CDN):
# npm installs the versions pinned in package-lock.json, and a script copies them to _vendor.
NPM_STAMP := node_modules/.package-lock.json
ASSETS := _vendor/versions.json
$(NPM_STAMP): package.json package-lock.json
	npm ci
$(ASSETS): $(NPM_STAMP) scripts/vendor_book_assets.py $(STAMP)
	$(BIN)/python scripts/vendor_book_assets.py
	rm -rf _build/html _build/.doctrees   # Sphinx recopies static files only on a full write

assets: $(ASSETS)

# Notebooks are executed through the execution cache (_build/.jupyter_cache): a rebuild
# re-runs only notebooks whose code changed.
# Its log (_build/book.log) names each notebook it executed, for `make test`'s count of runs.
book: $(STAMP) $(ASSETS)
	@mkdir -p _build
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going 2>&1 | tee _build/book.log

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Train the stand-in source model ahead of time and write it into the package
# (d2lhelpers/modeldata/standin-resnet18.pt, about 10 minutes on 2 cores). Run it after changing
# the drawings (standin_draw.py) or SourceTraining: a unit test refuses a model that no longer
# matches them.
standin-model: $(STAMP)
	$(BIN)/python scripts/train_standin_source.py

# Fast unit tests only (about a minute).
unit fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not book" -q

# The widget tests again (the sweep panel, the photo panel), against ipywidgets 7.7.1 (what
# Colab ships), in a side folder.
IPYW7 := $(VENV)/ipywidgets7
widgets7: $(STAMP)
	PYTHON=$(BIN)/python bash scripts/ipywidgets7_env.sh $(IPYW7)
	PYTHONPATH=$(IPYW7) $(BIN)/python -m pytest -q tests/test_widgets.py tests/test_photo.py

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

# What trains more than a unit test should: a smoke run of the benchmark, data-parallel training
# under torchrun. (The lesson itself is checked on the book build's run: make book-checks.)
integration: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m pytest -m slow -q

# Every notebook in chapters/ executed by nbval in the main environment; checked cells compare
# their stored outputs, and a warning on a cell's stderr fails it. For maintainers: `make test`
# checks the same on the book build's run instead (make book-checks), to run each page once.
notebooks: $(STAMP)
	PYTHONPATH=scripts $(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:randomly \
		-p nbval_stderr -q chapters

# The book build's executed notebooks (the one full run of each page in `make test`): checked
# cells print what the notebooks store, and the lesson holds on the chapter's own numbers.
book-checks: $(STAMP)
	$(BIN)/python -m pytest -m book -q -p no:randomly tests/test_book_run.py

# The built book, offline, in Debian's Chromium (Playwright drives it through its path; a
# browser download is impossible here). Without root: set CHROMIUM=/path/to/chromium-or-chrome.
browser-deps:
	@if [ -z "$$CHROMIUM" ] && ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "Chromium is missing: ask an administrator to 'apt-get install chromium'," \
	    "or set CHROMIUM to a Chromium or Chrome binary of your own."; exit 1; fi; \
	fi

browser: $(STAMP) browser-deps
	$(BIN)/python -m pytest -m book -q -p no:randomly tests/test_book_offline.py tests/test_book_browser.py

# Every notebook executed once, shortened (D2LHELPERS_SHORT_RUN=1), in a Colab-shaped environment
# (Python 3.13, torch 2.11, IPython 7.34, ipywidgets 7.7.1, ...), after installing d2lhelpers the
# way the notebooks' Colab cell does. Each notebook it runs is logged to $(RUNS_LOG).
PYTHON313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13 \
	/root/.pyenv/versions/3.13*/bin/python3.13) \
	$(shell command -v python3.13 2>/dev/null))
COLAB_VENV := .venv-colab
COLAB_STAMP := $(COLAB_VENV)/.installed
$(COLAB_STAMP): scripts/colab_requirements.txt
	@test -n "$(PYTHON313)" || { echo "colab-check needs Python 3.13: set PYTHON313=/path/to/python3.13"; exit 1; }
	rm -rf $(COLAB_VENV)
	$(PYTHON313) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install --quiet -r scripts/colab_requirements.txt
	touch $@

RUNS_LOG := _build/notebook-runs.log
colab-check: $(COLAB_STAMP)
	@mkdir -p _build
	NOTEBOOK_RUNS_LOG=$(CURDIR)/$(RUNS_LOG) $(COLAB_VENV)/bin/python scripts/colab_check.py

# Each notebook runs its full lesson once, in the book build (whose executed copies book-checks
# and the browser test read), and once shortened in the Colab-like environment; the last step
# prints how often each one ran. real-check runs both once more, shortened, on the real branch,
# and gpu-check-dry the chapter's real branch once more, shortened, as the GPU check runs it.
test:
	@mkdir -p _build && rm -f $(RUNS_LOG) _build/book.log
	$(MAKE) lint unit widgets7 integration gpu-check-dry colab-check book book-checks browser \
		real-check
	$(BIN)/python scripts/notebook_runs.py $(RUNS_LOG) _build/book.log

# The lower bounds of pyproject.toml, tested: the fast unit tests and the chapter on the stand-in
# in .venv-oldest (Python 3.10 and exactly the oldest allowed versions; PYTHON310=... if pyenv
# lacks it). Not part of `make test` (it installs a second torch); run it when a bound changes.
oldest:
	bash scripts/oldest_check.sh

# For a machine with a CUDA GPU and no internet, run with that machine's own python3 (its torch
# and torchvision): the CUDA unit tests, peak memory against a T4's, the loop against the bare
# model step, the A/B benchmark against d2l, and the pages (the stand-in in the auto precision
# and in fp16, the real branch at 224 px), written to benchmarks/results/cuda.{json,md} (about
# 5 minutes on an H200). What it needs and that machine lacks travels in .gpu/, which
# `make gpu-carry` fills here (internet needed).
# `make gpu-check-dry` (in `make test`) runs the same steps at tiny sizes on the CPU, into _build/.
# See scripts/gpu_check.py.
GPU_PYTHON ?= python3
# The panels clicked in a real JupyterLab by Chromium: 运行 then 停止 three times (the third after
# a reload) and the photo panel. JupyterLab runs from its own environment, the kernel from $(VENV).
# Not part of `make test` (it installs JupyterLab); about 25 s once the stand-in is cached.
LAB := $(VENV)/jupyterlab
$(LAB)/bin/jupyter: $(STAMP)
	$(PYTHON) -m venv $(LAB)
	$(LAB)/bin/pip install --quiet "jupyterlab==4.6.6" "jupyterlab_widgets==$$($(BIN)/python -c \
	  'import importlib.metadata as m; print(m.version("jupyterlab_widgets"))')"
jupyterlab-check: $(STAMP) browser-deps $(LAB)/bin/jupyter
	$(BIN)/python scripts/jupyterlab_check.py --jupyter $(LAB)/bin/jupyter

# The same clicks in the classic Notebook 6 on Colab's kernel: ipykernel 6.17 and ipywidgets 7.7.1
# from the Colab-like environment (no subshells: a click is handled on the kernel's main thread).
# The page's widget code is widgetsnbextension 3.5.2: with 3.6.1 or 3.6.10 (Colab's), notebook
# 6.5.7 stores every widget output with an empty model id and hides it, a bare Button included.
# Not part of `make test`; it needs $(COLAB_VENV) (made by `make colab-check`). About a minute.
CLASSIC := $(VENV)/classic-notebook
$(CLASSIC)/bin/jupyter: $(STAMP)
	$(PYTHON) -m venv $(CLASSIC)
	$(CLASSIC)/bin/pip install --quiet "notebook==6.5.7" "widgetsnbextension==3.5.2"
classic-check: $(STAMP) $(COLAB_STAMP) browser-deps $(CLASSIC)/bin/jupyter
	$(BIN)/python scripts/jupyterlab_check.py --front-end classic --jupyter $(CLASSIC)/bin/jupyter \
		--kernel-python $(COLAB_VENV)/bin/python

gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py

gpu-carry: $(STAMP)
	$(BIN)/python scripts/gpu_check.py --prepare

gpu-check-dry: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python scripts/gpu_check.py --dry --device cpu

# The notebooks' real-data branch (ws.kind == "real"), executed offline with D2LHELPERS_SHORT_RUN=1:
# 48 real photos from pinned PyPI wheels (cached in $(D2LHELPERS_DATA)/real-photos-wheels) in a
# hot dog folder that the package's own extraction verified, and a random ResNet-18 under
# torchvision's file name for the ImageNet weights. See scripts/real_branch_check.py.
real-check: $(STAMP)
	$(BIN)/python scripts/real_branch_check.py

# The pages and the stand-in measured against their budgets on the slow CPU class, imitated
# here by the shared slow-cpu tool (AVX2 limits, fp32, a calibrated time factor): image-passes,
# wall time here, the estimate there and the budget, written to benchmarks/results/budget.md.
# A measurement (about 20 minutes on an idle 2-core CPU), not part of `make test`.
SLOW_CPU ?= $(CURDIR)/../shared/tools/slow-cpu
budget: $(STAMP)
	$(BIN)/python scripts/budget.py --slow-cpu $(SLOW_CPU)

clean:
	rm -rf _build .pytest_cache .ruff_cache _vendor
