"""The image cannot be built here (no Docker engine), so its recipe is checked statically: base, user, entry
point, that every COPY source exists, that the files it copies are every first-party module the server imports,
and that requirements.txt covers every third-party import and pins what the bundle was trained with."""

from __future__ import annotations

import ast
import json
import re
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from serving.container.__main__ import main

REPO = Path(__file__).resolve().parents[2]
CONTAINER = REPO / "serving" / "container"
FIRST_PARTY = {"pipelines", "serving", "clinops", "infra", "policies"}
DISTRIBUTIONS = {"sklearn": "scikit-learn", "yaml": "PyYAML"}


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
    assert steps[0] == ("FROM", "python:3.11-slim")
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


def requirements() -> dict[str, str]:
    pins = {}
    for line in (CONTAINER / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned, f"unpinned requirement {line}"
            pins[name] = pinned
    return pins


def test_requirements_cover_every_third_party_import_and_match_this_environment() -> None:
    _, third_party = import_closure(CONTAINER / "__main__.py")
    pins = requirements()
    assert {DISTRIBUTIONS.get(name, name) for name in third_party} <= set(pins)
    assert {"typer", "mlflow", "fastapi", "uvicorn"}.isdisjoint(pins)  # the image carries the server only
    assert {name: version(name) for name in pins} == pins


@pytest.mark.parametrize("argv", [["train"], ["serve", "extra"]])
def test_the_entry_point_accepts_only_serve(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: python -m serving.container serve" in capsys.readouterr().err
