# tipkit: `make book` builds the HTML book from real papermill runs; `make test` runs the tests.
# Both create the virtual environment (.venv) when missing and reuse it when present.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tipkit-installed
SWEEP  ?= configs/demo.yaml

.PHONY: install test book book-nosolutions classroom wheelhouse runs report clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

runs: $(STAMP)
	$(PY) -m tipkit sweep $(SWEEP)

report: runs
	$(PY) -m tipkit report

# Pages read book/_data/*.csv and benchmarks/results/*.csv: when the report or a benchmark changed them, drop
# Sphinx's and jupyter-cache's state so every page is re-read and re-executed; otherwise the cached build is reused.
book: report
	@if [ ! -f _build/.book-stamp ] || [ -n "$$(find book/_data benchmarks/results -newer _build/.book-stamp | head -1)" ]; then \
		rm -rf _build/.jupyter_cache _build/.doctrees; fi
	$(VENV)/bin/jupyter-book build . -n -W --keep-going
	@touch _build/.book-stamp
	@echo "book: $(CURDIR)/_build/html/index.html"

# The book without the exercises' solutions (tipkit/sphinx_solutions.py), beside the usual one.
book-nosolutions: report
	TIPKIT_HIDE_SOLUTIONS=1 $(VENV)/bin/jupyter-book build . -n -W --keep-going --path-output _build/nosolutions
	@echo "book without solutions: $(CURDIR)/_build/nosolutions/_build/html/index.html"

# Student notebooks (solutions removed) and teacher notebooks, from notebooks/walkthrough.ipynb.
classroom: $(STAMP)
	$(PY) -m tipkit classroom

# For a lab without internet (run where PyPI is reachable, with the lab's Python and platform): every pinned
# package as a wheel, JupyterLab for the students, and the Fashion-MNIST Debian package. See book/teachers.md.
WHEEL_EXTRA ?= jupyterlab
wheelhouse:
	$(PYTHON) -m pip wheel -r requirements.txt $(WHEEL_EXTRA) -w wheelhouse
	cd wheelhouse && apt-get download dataset-fashion-mnist

clean:
	rm -rf _build _results .cache
