# Retail recommender book. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATASET ?= completejourney
JOBS ?= 2
ARGS ?=
DATA ?=
DATA_ARG := $(if $(DATA),--data-dir $(DATA),)

.DEFAULT_GOAL := help
.PHONY: help venv book pipeline build-book test test-spark lab serve bench synthetic-lift ablation spark-demo clean check sample

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)  ## Create .venv and install requirements.txt and the helpers package

pipeline: $(STAMP)  ## Run every notebook with papermill (DATASET=..., DATA=folder for files, JOBS=2, ARGS='--param k=v')
	$(PY) -m helpers.pipeline run --dataset $(DATASET) $(DATA_ARG) --jobs $(JOBS) $(ARGS)

build-book: $(STAMP)  ## Build the Jupyter Book from the executed notebooks (no execution)
	$(PY) -m helpers.pipeline.book

book: pipeline build-book  ## Run the whole pipeline on $(DATASET) (default Complete Journey) and build the book

test: $(STAMP)  ## Run the test suite
	$(PY) -m pytest

test-spark: $(STAMP)  ## Run the Spark engine's tests on local[2] (needs Java)
	$(PY) -m pytest -m spark tests/spark

lab: $(STAMP)  ## Start JupyterLab on the project
	$(VENV)/bin/jupyter lab --notebook-dir=.

serve: $(STAMP)  ## Start the recommendation API on 127.0.0.1:8000
	$(PY) -m uvicorn helpers.serving.api:app --host 127.0.0.1 --port 8000

bench: $(STAMP)  ## Run the benchmarks (reports/benchmarks/bench.json, book page Performance)
	$(PY) -m helpers.bench $(ARGS)

synthetic-lift: $(STAMP)  ## The hybrid vs the best other model on the synthetic retailer, 2 seeds x 2 sizes (Methods chapter)
	$(PY) -m helpers.pipeline lift --jobs $(JOBS) $(ARGS)

ablation: $(STAMP)  ## The re-ranker with each feature group left out, on the last run's validation window (Methods chapter)
	$(PY) -m helpers.pipeline ablation $(ARGS)

check: $(STAMP)  ## Check a folder of your own files without running models (DATA=folder)
	@test -n "$(DATA)" || { echo "usage: make check DATA=path/to/folder"; exit 2; }
	$(PY) -m helpers.pipeline check --data-dir $(DATA)

sample: $(STAMP)  ## Generate data/sample/, a small folder of retailer files with text ids and a recbook.toml
	$(PY) -m helpers.data.sample data/sample

SPARK_MASTER ?= local[2]
SPARK_CUSTOMERS ?= 5000

spark-demo: $(STAMP)  ## Run the Spark engine on synthetic data (SPARK_CUSTOMERS=5000, SPARK_MASTER=local[2]; needs Java)
	$(PY) -m helpers.spark --synthetic $(SPARK_CUSTOMERS) --n-products 1000 --master '$(SPARK_MASTER)' \
		--export-dir reports/spark_demo/export --output-dir reports/spark_demo $(ARGS)

clean:  ## Remove generated outputs (keeps .venv)
	rm -rf _build reports/executed reports/tables reports/figures reports/failed reports/.staging* reports/spark_demo
	find data/processed -type f ! -name .gitkeep -delete 2>/dev/null || true
	find data/exports -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} + 2>/dev/null || true  # versions and current
