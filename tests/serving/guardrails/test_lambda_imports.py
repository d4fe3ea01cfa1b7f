"""The Lambda modules import with nothing but the standard library, boto3 (the Lambda runtime's) and the files
their code archive ships (`infra.guardrails._CODE`: the handlers and the shared core they use)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

LAMBDA_MODULES = (
    "serving.guardrails.breaker",
    "serving.guardrails.recorder",
    "serving.guardrails.retrain",
    "serving.guardrails.canary",
)
NOT_IN_THE_RUNTIME = ("pydantic", "ruamel", "yaml", "typer", "rich", "pulumi", "pulumi_aws", "numpy", "pandas")
FIRST_PARTY = ("clinops", "serving", "pipelines", "infra", "policies")

PROBE = f"""
import importlib, importlib.abc, sys
shipped = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in {NOT_IN_THE_RUNTIME!r} or (top in {FIRST_PARTY!r} and name not in shipped):
            raise ImportError("not in the Lambda's runtime or code archive: " + name)
sys.meta_path.insert(0, Block())
for module in {LAMBDA_MODULES!r}:
    importlib.import_module(module)
print("ok")
"""


def shipped_modules() -> set[str]:
    from infra.guardrails import _CODE

    files = {path for pattern in _CODE for path in REPO.glob(pattern)}
    modules = {".".join(f.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__") for f in files}
    return modules | {"serving.guardrails.canary"}  # the canary ships alone in its own archive (infra.canary)


def probe(shipped: set[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(sorted(shipped))], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_the_lambda_modules_need_only_the_standard_library_boto3_and_their_archive() -> None:
    done = probe(shipped_modules())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_module_missing_from_the_archive_is_caught() -> None:
    done = probe(shipped_modules() - {"clinops.names"})
    assert done.returncode != 0 and "clinops.names" in done.stderr
