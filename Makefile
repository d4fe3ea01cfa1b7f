# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export CKV_SKIP_PACKAGE_UPDATE_CHECK := True
export SAGEMAKER_VALIDATE_ROLE := false
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export AWS_DEFAULT_REGION ?= us-east-1
export PYTHONDONTWRITEBYTECODE :=

.PHONY: venv demo test lint bench clean lambda-layer

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip uv
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e '.[dev]'
	# SARIF 2.1.0 JSON schema, to validate the gate's code-scanning output offline (shipped in an npm package).
	mkdir -p $(VENV)/share/sarif && cd $(VENV)/share/sarif && npm pack --silent @microsoft/jest-sarif@1.0.0-beta.0 >/dev/null \
		&& tar xzf microsoft-jest-sarif-1.0.0-beta.0.tgz package/lib/schemas/sarif-2.1.0-rtm.5.json \
		&& mv package/lib/schemas/sarif-2.1.0-rtm.5.json sarif-2.1.0.json && rm -rf package *.tgz
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/clinops demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n 2

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) bench/render.py
	$(PY) bench/gate.py
	$(PY) bench/pipeline.py
	$(PY) bench/serving.py
	$(PY) bench/drift.py

# The guardrail Lambdas' dependency layer (pydantic, for the evidence log), built for the Lambda runtime
# (CPython 3.11, x86_64 manylinux wheels). `pulumi up` needs it; the offline render only names it.
lambda-layer: $(STAMP)
	rm -rf build/lambda-layer && mkdir -p build/lambda-layer/python
	$(PY) -m pip install --quiet --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.11 \
		--implementation cp --target build/lambda-layer/python 'pydantic>=2.7,<3'
	rm -f build/lambda-deps.zip && cd build/lambda-layer && $(abspath $(PY)) -m zipfile -c ../lambda-deps.zip python
	@echo "build/lambda-deps.zip"

clean:
	rm -rf $(VENV) out mlruns
