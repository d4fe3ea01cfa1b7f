"""Read a contract YAML into a `Contract`, with errors that name the file, the key and the fix."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from pydantic import ValidationError

from pipelines.contracts.model import Contract
from pipelines.errors import InputError

BUILTIN_DIR = Path(__file__).resolve().parent
# libyaml's loader when the wheel has it (same documents, ~8x faster: a 50-model render reads every contract);
# the pure-Python loader otherwise.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def builtin_contract_path(model_name: str) -> Path:
    return BUILTIN_DIR / f"{model_name}.yaml"


def parse_contract(text: str, source: str = "<contract>") -> Contract:
    try:
        raw = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"contract {source} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise InputError(f"contract {source} must be a YAML mapping with name, version, label and columns")
    try:
        return Contract.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key; check the spelling against the contract format"
            lines.append(f"  - {key}: {message}")
        raise InputError(f"contract {source} does not match the contract format:\n" + "\n".join(lines)) from None


def load_contract(path: str | Path) -> Contract:
    path = Path(path)
    if path.is_dir():  # a SageMaker input channel holds exactly one contract file
        candidates = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
        if len(candidates) != 1:
            raise InputError(f"expected exactly one contract YAML in {path}, found {len(candidates)}")
        path = candidates[0]
    if not path.is_file():
        raise InputError(f"contract file {path} does not exist; pass --contract PATH to a contract YAML")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"contract file {path} cannot be read: {exc}") from None
    return parse_contract(text, source=str(path))


def contract_yaml(contract: Contract) -> str:
    return yaml.safe_dump(contract.model_dump(mode="json", exclude_defaults=True), sort_keys=False)


def contract_fingerprint(contract: Contract) -> str:
    """Content hash: tells an edited contract from a re-versioned one."""
    canonical = json.dumps(contract.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
