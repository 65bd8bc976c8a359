# Thin wrappers: every target calls `paddy` from the project's own .venv.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXP ?=
RUNS ?=
ARGS ?=
SUB ?=
MSG ?=

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast download check sizes resize cache train sweep kaggle results report ensemble submit submissions list

help: ## show these targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## make .venv and install paddy with its test tools (skipped when up to date)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: install ## run the whole pipeline offline on scikit-learn's digits → submissions/demo.csv
	$(BIN)/paddy demo

test: install ## lint with ruff, then the test suite (CPU, no network): on three workers, then the ones that stop processes, alone
	$(BIN)/ruff check .
	$(BIN)/pytest -n 3 --dist loadfile -m 'not serial'
	$(BIN)/pytest -m serial

test-fast: install ## the tests to run while you work: none that trains in a subprocess (under 90 s)
	$(BIN)/pytest -n 2 --dist loadfile -m 'not slow' -q

download: install ## download and unzip the competition into data/ once (needs a Kaggle token: see README)
	$(BIN)/paddy download $(ARGS)

check: install ## check the data folder before a long run [ARGS='--deep --data DIR']
	$(BIN)/paddy check $(ARGS)

sizes: install ## census of image sizes and orientations, the odd ones by id [ARGS='--data DIR']
	$(BIN)/paddy sizes $(ARGS)

resize: install ## a smaller copy of the data, resumable: make resize ARGS='--max-size 256' → train with --data on it
	$(BIN)/paddy resize $(ARGS)

cache: install ## where the item cache lives and what it holds [ARGS=--clear]
	$(BIN)/paddy cache $(ARGS)

train: install ## fine-tune one experiment: make train EXP=convnext_small_rect [ARGS='--set epochs=1 --data DIR'] (ARGS='--resume RUN' alone goes on)
	@test -n "$(EXP)$(ARGS)" || { echo "make train needs EXP=NAME (see make list), or ARGS='--resume RUN'"; exit 2; }
	$(BIN)/paddy train $(EXP) $(ARGS)

sweep: install ## train many from a queue, one per GPU (a Ray cluster's with ARGS='--engine ray'), resumable: make sweep EXP='convnext_small_rect vit_small_squish' [ARGS='--repeat 3']
	@test -n "$(EXP)" || { echo "make sweep needs EXP='NAME NAME…': see make list"; exit 2; }
	$(BIN)/paddy sweep $(EXP) $(ARGS)

kaggle: install ## Kaggle's GPUs: make kaggle ARGS='run convnext_small_rect --repeat 2', then ARGS=status, ARGS=pull
	@test -n "$(ARGS)" || { echo "make kaggle needs ARGS='run EXP…', ARGS=status or ARGS=pull (see docs/kaggle-gpus.md)"; exit 2; }
	$(BIN)/paddy kaggle $(ARGS)

results: install ## every finished run as one table [ARGS='--csv runs.csv']
	$(BIN)/paddy results $(ARGS)

report: install ## rank the runs: score, top 15, better-and-faster subset, reports/*.png [ARGS='--dataset paddy-disease-classification']
	$(BIN)/paddy report $(ARGS)

ensemble: install ## average runs into submissions/: make ensemble [RUNS='convnext*'] [ARGS='--vote --name NAME']
	$(BIN)/paddy ensemble $(RUNS) $(ARGS)

submit: install ## check, submit and log a CSV: make submit SUB=submissions/best.csv MSG='convnext+vit'
	@test -n "$(SUB)" -a -n "$(MSG)" || { echo "make submit needs SUB=FILE and MSG='what is in it'"; exit 2; }
	$(BIN)/paddy submit "$(SUB)" -m "$(MSG)" $(ARGS)

submissions: install ## your submissions: their runs and validation error beside the leaderboard scores
	$(BIN)/paddy submissions $(ARGS)

list: install ## show every experiment as a table
	$(BIN)/paddy list
