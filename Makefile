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

.PHONY: venv demo test lint bench clean lambda-layer lock exports

# uv itself is pinned here and in pyproject.toml ([tool.uv] required-version); it lives in its own small venv so
# that `uv sync` may make the project venv exactly the lock.
UV_VERSION := 0.13.9
UV_VENV := .venv-uv
UV := $(UV_VENV)/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Artefacts built from subsets of the lock: requirements file <- dependency group (pyproject.toml).
EXPORTS := serving/container/requirements.txt:inference-image serving/guardrails/layer-requirements.txt:guardrail-layer \
	pipelines/image-requirements.txt:pipeline-steps-image serving/cds/layer-requirements.txt:cds-layer

$(UV):
	python3 -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION)

# Installs exactly uv.lock: --locked refuses to run if the lock no longer matches pyproject.toml (run `make lock`).
$(STAMP): pyproject.toml uv.lock policies/engines/iam/package-lock.json | $(UV)
	test -x $(PY) || python3 -m venv $(VENV)
	$(UV) sync --locked --extra dev --compile-bytecode --python $(PY) --quiet
	npm ci --prefix policies/engines/iam --no-audit --no-fund --silent
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/clinops demo

test: lint
	$(PY) -m pytest -n 2

# What CI checks is what lint checks: style, formatting, the declared import layers and types (pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

# The one deliberate way to move versions: re-resolve (UPGRADE=1 takes the newest allowed releases), then
# re-export the image and layer requirements from the new lock. Commit uv.lock and the exports together.
lock: $(UV)
	$(UV) lock $(if $(UPGRADE),--upgrade,)
	$(MAKE) exports

exports: $(UV)
	@for pair in $(EXPORTS); do \
		file=$${pair%%:*}; group=$${pair##*:}; \
		$(UV) export --frozen --quiet --only-group $$group --no-emit-project --output-file $$file; \
		echo "$$file <- uv.lock [$$group]"; \
	done

bench: $(STAMP)
	$(PY) bench/render.py --mesh 2,10,50
	$(PY) bench/gate.py
	$(PY) bench/access.py
	$(PY) bench/pipeline.py
	$(PY) bench/serving.py
	$(PY) bench/drift.py
	$(PY) bench/cds.py
	$(PY) bench/explain.py

# The guardrail Lambdas' dependency layer (the lock's guardrail-layer group, hash-checked), built for the Lambda
# runtime (CPython 3.11, x86_64 manylinux wheels). `pulumi up` needs it; the offline render only names it.
lambda-layer: $(STAMP)
	rm -rf build/lambda-layer && mkdir -p build/lambda-layer/python
	$(UV) pip install --quiet --no-deps --require-hashes --only-binary :all: --python-platform x86_64-manylinux2014 \
		--python-version 3.11 --compile-bytecode --target build/lambda-layer/python -r serving/guardrails/layer-requirements.txt
	rm -f build/lambda-deps.zip && cd build/lambda-layer && $(abspath $(PY)) -m zipfile -c ../lambda-deps.zip python
	@echo "build/lambda-deps.zip"
	rm -rf build/cds-layer && mkdir -p build/cds-layer/python
	$(UV) pip install --quiet --no-deps --require-hashes --only-binary :all: --python-platform x86_64-manylinux2014 \
		--python-version 3.11 --compile-bytecode --target build/cds-layer/python -r serving/cds/layer-requirements.txt
	rm -f build/cds-lambda-deps.zip && cd build/cds-layer && $(abspath $(PY)) -m zipfile -c ../cds-lambda-deps.zip python
	@echo "build/cds-lambda-deps.zip"

clean:
	rm -rf $(VENV) $(UV_VENV) out mlruns
