"""The image cannot be built here (no Docker engine), so its recipe is checked statically: base pinned by digest,
user, entry point, that every COPY source exists and passes .dockerignore, that the files it copies are every
first-party module the server imports, and that requirements.txt covers every third-party import and is exactly
the lock's versions (with hashes), so the image runs the scikit-learn that trained the bundle."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from serving.container.__main__ import main
from tests.conftest import REPO

CONTAINER = REPO / "serving" / "container"
FIRST_PARTY = {"pipelines", "serving", "clinops", "infra", "policies"}
DISTRIBUTIONS = {"sklearn": "scikit-learn", "yaml": "pyyaml"}
EXPORTS = {
    "serving/container/requirements.txt": "inference-image",
    "serving/guardrails/layer-requirements.txt": "guardrail-layer",
    "pipelines/image-requirements.txt": "pipeline-steps-image",
    "serving/cds/layer-requirements.txt": "cds-layer",
}


def instructions() -> list[tuple[str, str]]:
    text = (CONTAINER / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def copied_paths() -> list[Path]:
    paths = []
    for name, args in instructions():
        if name == "COPY":
            *sources, _ = args.split()
            paths += [REPO / source for source in sources if not source.startswith("--")]
    return paths


def test_base_user_and_entry_point() -> None:
    steps = instructions()
    names = [name for name, _ in steps]
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", steps[0][1]), "base not pinned by digest"
    user = [args for name, args in steps if name == "USER"]
    assert user and user[-1] not in ("root", "0") and not user[-1].startswith("0:")
    assert names.index("USER") < names.index("ENTRYPOINT")
    assert json.loads(dict(steps)["ENTRYPOINT"]) == ["python", "-m", "serving.container"]
    assert json.loads(dict(steps)["CMD"]) == ["serve"]  # SageMaker runs `docker run IMAGE serve`
    assert dict(steps)["EXPOSE"] == "8080"


def test_every_copy_source_exists() -> None:
    paths = copied_paths()
    assert paths, "the Dockerfile copies nothing"
    missing = [str(p.relative_to(REPO)) for p in paths if not p.exists()]
    assert not missing


def _module_file(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # may be submodules
    return found


def import_closure(entry: Path) -> tuple[set[Path], set[str]]:
    """First-party files reachable from `entry` (with their packages' __init__) and third-party top-level names."""
    files, third_party, todo = set(), set(), [entry]
    while todo:
        path = todo.pop()
        if path in files:
            continue
        files.add(path)
        for module in _imports(path):
            top = module.split(".")[0]
            if top not in FIRST_PARTY:
                if top not in sys.stdlib_module_names and top != "__future__":
                    third_party.add(top)
                continue
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):
                file = _module_file(".".join(parts[:depth]))
                if file is not None:
                    todo.append(file)
    return files, third_party


def test_the_image_holds_every_module_the_server_imports() -> None:
    files, _ = import_closure(CONTAINER / "__main__.py")
    copied = copied_paths()

    def is_copied(file: Path) -> bool:
        return any(file == p or (p.is_dir() and p in file.parents) for p in copied)

    assert {str(f.relative_to(REPO)) for f in files if not is_copied(f)} == set()
    assert REPO / "pipelines" / "contracts" / "loader.py" in files  # the closure really follows imports


def requirements(path: Path) -> dict[str, set[str]]:
    """name -> pinned versions (one per Python-version marker), from a hash-checked requirements file."""
    pins: dict[str, set[str]] = {}
    logical = re.sub(r"\\\n", " ", path.read_text())
    for line in logical.splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = line.split(";")[0].split("--hash")[0].strip()
            name, _, pinned = requirement.partition("==")
            assert pinned, f"unpinned requirement {line}"
            assert "--hash=sha256:" in line, f"{name} has no hash: the image installs with --require-hashes"
            pins.setdefault(name.lower(), set()).add(pinned.strip())
    return pins


def lock_versions() -> dict[str, set[str]]:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    versions: dict[str, set[str]] = {}
    for package in lock["package"]:
        versions.setdefault(package["name"], set()).add(package["version"])
    return versions


def test_requirements_cover_every_third_party_import_and_are_the_lock() -> None:
    _, third_party = import_closure(CONTAINER / "__main__.py")
    pins = requirements(CONTAINER / "requirements.txt")
    assert {DISTRIBUTIONS.get(name, name) for name in third_party} <= set(pins)
    assert {"typer", "mlflow", "fastapi", "uvicorn"}.isdisjoint(pins)  # the image carries the server only
    locked = lock_versions()
    assert {name: versions - locked.get(name, set()) for name, versions in pins.items()} == {n: set() for n in pins}


@pytest.mark.parametrize("path", sorted(EXPORTS))
def test_exported_requirements_are_current_with_the_lock(path: str, tmp_path: Path) -> None:
    """What `make exports` would write now is what is committed: an edited lock without re-export fails here."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert uv, "uv is a locked dev dependency; the venv must have it"
    out = tmp_path / "requirements.txt"
    subprocess.run(
        [
            uv,
            "export",
            "--frozen",
            "--quiet",
            "--only-group",
            EXPORTS[path],
            "--no-emit-project",
            "--output-file",
            str(out),
            "--project",
            str(REPO),
        ],
        check=True,
        env={"PATH": "/usr/bin:/bin", "UV_NO_CONFIG": "1", "HOME": str(tmp_path)},
    )
    assert out.read_text().splitlines()[2:] == (REPO / path).read_text().splitlines()[2:]  # past the header
    assert requirements(REPO / path)


def test_libraries_are_byte_compiled_and_installed_without_resolution() -> None:
    installs = [args for name, args in instructions() if name == "RUN" and "pip install" in args]
    assert installs and all("--require-hashes" in a and "--no-deps" in a and "--compile" in a.split() for a in installs)
    assert not any("--no-compile" in a for a in installs)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.removeprefix("!").rstrip("/")
        if fnmatch.fnmatch(path, body) or fnmatch.fnmatch(path, body + "/*") or path.startswith(body + "/"):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_data_and_environments_out_of_the_context() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for secret in (
        ".venv/bin/python",
        "out/data/train.csv",
        "out/mlflow/mlflow.db",
        "mlruns/0/meta.yaml",
        ".git/HEAD",
        "out/evidence/prod/log.jsonl",
        "tests/data/x.csv",
        "Pulumi.prod.yaml",
    ):
        assert _ignored(secret, patterns), f"{secret} would enter the build context"
    for source in copied_paths():
        relative = str(source.relative_to(REPO))
        files = [str(f.relative_to(REPO)) for f in source.rglob("*.py")] if source.is_dir() else [relative]
        assert not [f for f in files if _ignored(f, patterns)], f"{relative} is copied but ignored"


@pytest.mark.parametrize("argv", [["train"], ["serve", "extra"]])
def test_the_entry_point_accepts_only_serve(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: python -m serving.container serve" in capsys.readouterr().err
