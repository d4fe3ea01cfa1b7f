"""The Lambda modules import with nothing but the standard library and boto3 (the Lambda runtime's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LAMBDA_MODULES = ("serving.rollback.breaker", "serving.rollback.recorder", "serving.rollback.retrain")
NOT_IN_THE_RUNTIME = ("pydantic", "ruamel", "yaml", "typer", "rich", "pulumi", "pulumi_aws", "numpy", "clinops")

PROBE = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {NOT_IN_THE_RUNTIME!r}:
            raise ImportError("not in the Lambda runtime: " + name)
sys.meta_path.insert(0, Block())
for module in {LAMBDA_MODULES!r}:
    importlib.import_module(module)
print("ok")
"""


def test_the_lambda_modules_need_only_the_standard_library_and_boto3() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
