# Two entry points, each sets everything up first: `make demo` (the main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo suite test test-slow bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,train,bench]'
	touch $(STAMP)

install: $(STAMP)

# Train PPO on Conflict-Medium (configs/quickstart.yaml, <= 5 min), then print its held-out
# accuracy beside every baseline and the oracle; the run folder is runs/quickstart-<time>/.
demo: $(STAMP)
	$(BIN)/memgym train configs/quickstart.yaml

suite: $(STAMP)
	$(BIN)/memgym eval --suite streaming --episodes 100 --json runs/suite/streaming.json --plot runs/suite/streaming.png

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Learning checks and long streams: slower, still run by CI.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/memgym bench envs --json runs/bench/envs.json
	$(BIN)/memgym bench train --json runs/bench/train.json

clean:
	rm -rf $(VENV) build *.egg-info
