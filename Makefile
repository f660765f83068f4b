# One-command entry points. `make demo` sets everything up and runs the daemon on the bundled TREC-6 pool;
# `make test` runs lint and the whole test suite (CI runs exactly this).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: setup demo demo-simulated demo-team demo-multilabel test faults lint bench stack-up stack-down clean

$(BIN)/al-daemon: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(BIN)/al-daemon

setup: $(BIN)/al-daemon  ## the daemon's venv and the Argilla server's own venv
	$(BIN)/al-daemon stack install

demo: setup  ## local Argilla + daemon; label in the UI yourself
	$(BIN)/al-daemon demo $(ARGS)

demo-simulated: setup  ## the same, labelled unattended by the simulated annotator
	$(BIN)/al-daemon demo --simulate $(ARGS)

demo-team: setup  ## politeness texts labelled by 3 simulated annotators; CROWDLAB consensus, ActiveLab relabels
	AL_POOL_FILE=data/politeness/train.jsonl AL_TEST_FILE=data/politeness/test.jsonl AL_DATASET=politeness-demo \
	AL_STATE_DIR=state/politeness-demo AL_CONSENSUS=crowdlab AL_ACTIVELAB=true AL_MAX_ANNOTATIONS=3 \
	$(BIN)/al-daemon demo --simulate --annotators 3 $(ARGS)

demo-multilabel: setup  ## GoEmotions texts (28 emotions, a set per text) labelled by the simulated annotator
	AL_POOL_FILE=data/goemotions/train.jsonl AL_TEST_FILE=data/goemotions/test.jsonl AL_LABEL_COLUMN=labels \
	AL_DATASET=goemotions-demo AL_STATE_DIR=state/goemotions-demo $(BIN)/al-daemon demo --simulate $(ARGS)

lint: $(BIN)/al-daemon
	$(BIN)/ruff check daemon tests docs bench
	$(BIN)/ruff format --check daemon tests docs bench

test: setup lint  ## unit + integration + end-to-end (starts its own Argilla stack on test ports)
	$(BIN)/pytest -q -rs --durations=10 $(ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; exit 1; fi; exit $$rc

faults: setup  ## the fault-injection suite alone (also part of `make test`); records its rows in tests/faults/RESULTS.md
	AL_FAULTS_RECORD=1 $(BIN)/pytest -q -rs tests/faults $(ARGS)

bench: setup  ## the default benchmark set (~85-100 min): efficiency, wait, idle, scale, first-batch, activelab (x2), ray, multilabel, warm-start -> bench/results/
	$(BIN)/python bench/all.py $(ARGS)

stack-up: setup
	$(BIN)/al-daemon stack up

stack-down: $(BIN)/al-daemon
	$(BIN)/al-daemon stack down

clean:
	-$(BIN)/al-daemon stack down
	rm -rf $(VENV) .stack state tests/output
