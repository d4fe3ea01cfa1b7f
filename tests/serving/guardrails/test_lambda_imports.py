"""The Lambda modules import with nothing but the standard library, boto3 (the Lambda runtime's) and the files
their code archive ships (`infra.guardrails._CODE`: the handlers and the shared core they use; the canary's own
archive, `infra.canary.ARCHIVE_FILES`; the CDS functions' `infra.cds_api._CODE`, beside their layer)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

LAMBDA_MODULES = ("serving.guardrails.breaker", "serving.guardrails.recorder", "serving.guardrails.retrain")
CANARY_MODULE = "serving.guardrails.canary"  # ships alone in its own archive (infra.canary)
NOT_IN_THE_RUNTIME = ("pydantic", "ruamel", "yaml", "typer", "rich", "pulumi", "pulumi_aws", "numpy", "pandas")
FIRST_PARTY = ("clinops", "serving", "pipelines", "infra", "policies")

PROBE = f"""
import importlib, importlib.abc, sys
shipped = set(sys.argv[1].split(","))
modules = sys.argv[2].split(",")
absent = set(sys.argv[3].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in absent or (top in {FIRST_PARTY!r} and name not in shipped):
            raise ImportError("not in the Lambda's runtime or code archive: " + name)
sys.meta_path.insert(0, Block())
for module in modules:
    importlib.import_module(module)
print("ok")
"""


def as_modules(files: set[Path]) -> set[str]:
    return {".".join(f.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__") for f in files}


def shipped_modules() -> set[str]:
    from infra.guardrails import _CODE

    return as_modules({path for pattern in _CODE for path in REPO.glob(pattern)})


def cds_modules() -> set[str]:
    from infra.cds_api import _CODE

    return as_modules({path for pattern in _CODE for path in REPO.glob(pattern)})


def canary_modules() -> set[str]:
    from infra.canary import ARCHIVE_FILES

    # the handler sits at the archive's root as handler.py; here it imports as serving.guardrails.canary
    return as_modules(set(ARCHIVE_FILES.values())) | {"serving", "serving.guardrails"}


def probe(
    shipped: set[str], modules: tuple[str, ...] = LAMBDA_MODULES, absent: tuple[str, ...] = NOT_IN_THE_RUNTIME
) -> subprocess.CompletedProcess[str]:
    """Import `modules` in a fresh interpreter where only `shipped` first-party modules exist and `absent`
    packages are missing, as in the function's runtime."""
    return subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(sorted(shipped)), ",".join(modules), ",".join(absent)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_lambda_modules_need_only_the_standard_library_boto3_and_their_archive() -> None:
    done = probe(shipped_modules())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_canary_needs_only_the_standard_library_boto3_and_its_own_archive() -> None:
    done = probe(canary_modules(), (CANARY_MODULE,))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    missing = probe(canary_modules() - {"clinops.traffic"}, (CANARY_MODULE,))
    assert missing.returncode != 0 and "clinops.traffic" in missing.stderr


def test_a_module_missing_from_the_archive_is_caught() -> None:
    done = probe(shipped_modules() - {"clinops.names"})
    assert done.returncode != 0 and "clinops.names" in done.stderr


# The CDS functions have a layer of their own (the lock's cds-layer group): pydantic, PyYAML, fhir.resources, PyJWT.
CDS_LAYER = ("pydantic", "yaml", "fhir", "jwt")
CDS_ABSENT = tuple(p for p in NOT_IN_THE_RUNTIME if p not in CDS_LAYER)


def test_the_cds_handler_needs_only_its_archive_and_its_layer() -> None:
    done = probe(cds_modules(), ("serving.cds.lambda_handler",), CDS_ABSENT)
    assert done.returncode == 0, done.stderr
    missing = probe(cds_modules() - {"clinops.traffic"}, ("serving.cds.lambda_handler",), CDS_ABSENT)
    assert missing.returncode != 0 and "clinops.traffic" in missing.stderr
