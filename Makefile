# One-command entry points. `make demo` sets everything up and runs the daemon on the bundled TREC-6 pool;
# `make test` runs lint and the whole test suite (CI runs exactly this).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
JOBS ?= 2

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

# the suite in two parts: every test but the serial ones on JOBS pytest-xdist workers (the Ray cluster's tests on one
# of them), then the serial ones (they stop the server the others use) alone; both run, either failing fails
test: setup lint  ## unit + integration + end-to-end (starts its own Argilla stack on test ports)
	rm -f tests/output/RESULTS.md
	$(BIN)/pytest -q -rs --durations=10 -n $(JOBS) --dist loadgroup -m "not serial" $(ARGS); a=$$?; \
	$(BIN)/pytest -q -rs --durations=3 -m serial $(ARGS); b=$$?; \
	if [ $$a -eq 5 ] && [ $$b -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; exit 1; fi; \
	for rc in $$a $$b; do if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then exit $$rc; fi; done

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
