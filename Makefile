# Retail recommender book. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATASET ?= completejourney
JOBS ?= 2
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv book pipeline build-book test lab serve bench spark-demo clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)  ## Create .venv and install requirements.txt and the helpers package

pipeline: $(STAMP)  ## Run every notebook with papermill (DATASET=..., JOBS=2 at once, ARGS='--param k=v')
	$(PY) -m helpers.pipeline run --dataset $(DATASET) --jobs $(JOBS) $(ARGS)

build-book: $(STAMP)  ## Build the Jupyter Book from the executed notebooks (no execution)
	$(PY) -m helpers.pipeline.book

book: pipeline build-book  ## Run the whole pipeline on $(DATASET) (default Complete Journey) and build the book

test: $(STAMP)  ## Run the test suite
	$(PY) -m pytest

lab: $(STAMP)  ## Start JupyterLab on the project
	$(VENV)/bin/jupyter lab --notebook-dir=.

serve: $(STAMP)  ## Start the recommendation API on 127.0.0.1:8000
	$(PY) -m uvicorn helpers.serving.api:app --host 127.0.0.1 --port 8000

bench: $(STAMP)  ## Run the benchmarks (reports/benchmarks/bench.json, book page Performance)
	$(PY) -m helpers.bench $(ARGS)

SPARK_MASTER ?= local[2]
SPARK_CUSTOMERS ?= 5000

spark-demo: $(STAMP)  ## Run the Spark engine on synthetic data (SPARK_CUSTOMERS=5000, SPARK_MASTER=local[2]; needs Java)
	$(PY) -m helpers.spark --synthetic $(SPARK_CUSTOMERS) --n-products 1000 --master '$(SPARK_MASTER)' \
		--export-dir reports/spark_demo/export --output-dir reports/spark_demo $(ARGS)

clean:  ## Remove generated outputs (keeps .venv)
	rm -rf _build reports/executed reports/tables reports/figures reports/failed reports/.staging reports/spark_demo
	find data/processed data/exports -type f ! -name .gitkeep -delete 2>/dev/null || true
