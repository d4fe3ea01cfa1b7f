"""The pipeline-steps image (pipelines/Dockerfile) holds every module the cloud steps and the drift/quality jobs
import, installs exactly the lock's versions, and every entry point the pipeline definitions name exists in it."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.definitions.monitoring import monitoring_definition
from tests.pipelines.definitions.test_monitoring import SETTINGS
from tests.serving.container.test_dockerfile import (
    DISTRIBUTIONS,
    REPO,
    _ignored,
    import_closure,
    lock_versions,
    requirements,
)

DOCKERFILE = REPO / "pipelines" / "Dockerfile"
# Cloud steps that SageMaker runs in this image (pipelines/definitions/steps.py) and the monitoring CLIs.
ENTRY_MODULES = [
    *(
        f"pipelines/steps/{s}.py"
        for s in ("validate", "split", "train", "score", "evaluate", "fairness", "decide", "card", "track")
    ),
    "pipelines/monitoring/drift/cli.py",
    "pipelines/monitoring/quality/cli.py",
]
# The image carries the MLflow client as mlflow-skinny (import name `mlflow`): TrackRun logs to the managed server.
IMAGE_DISTRIBUTIONS = {**DISTRIBUTIONS, "mlflow": "mlflow-skinny"}


def copied() -> tuple[list[Path], list[str]]:
    lines = [line.strip() for line in DOCKERFILE.read_text().replace("\\\n", " ").splitlines()]
    # COPY SRC... DEST: every token between the instruction and its destination is a source
    sources = [REPO / src for line in lines if line.startswith("COPY ") for src in line.split()[1:-1]]
    removed = [
        p.removeprefix("/app/")
        for line in lines
        if line.startswith("RUN rm")
        for p in line.split()
        if p.startswith("/app/")
    ]
    return sources, removed


def test_the_image_holds_every_module_the_steps_import() -> None:
    sources, removed = copied()
    files: set[Path] = set()
    for entry in ENTRY_MODULES:
        files |= import_closure(REPO / entry)[0]

    def in_image(file: Path) -> bool:
        relative = str(file.relative_to(REPO))
        inside = any(file == s or (s.is_dir() and s in file.parents) for s in sources)
        gone = any(Path(relative).match(p) or Path(p) in Path(relative).parents for p in removed)
        return inside and not gone

    assert {str(f.relative_to(REPO)) for f in files if not in_image(f)} == set()
    patterns = [
        ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    assert not [str(f.relative_to(REPO)) for f in files if _ignored(str(f.relative_to(REPO)), patterns)]


def test_requirements_cover_the_steps_and_are_the_lock() -> None:
    third_party: set[str] = set()
    for entry in ENTRY_MODULES:
        third_party |= import_closure(REPO / entry)[1]
    pins = requirements(REPO / "pipelines" / "image-requirements.txt")
    needed = {IMAGE_DISTRIBUTIONS.get(name, name) for name in third_party}
    assert needed <= set(pins), needed - set(pins)
    # the ARN tracking URI works only with the plugin installed (it registers itself through entry points, so no
    # module imports it by name); the full mlflow (server, UI, sqlite store) stays out of the image
    assert {"mlflow-skinny", "sagemaker-mlflow", "skops"} <= set(pins) and "mlflow" not in pins
    assert {"pulumi", "pulumi-aws", "sagemaker", "checkov"}.isdisjoint(pins)  # no infrastructure tooling inside
    locked = lock_versions()
    assert {name: versions - locked.get(name, set()) for name, versions in pins.items()} == {n: set() for n in pins}


def test_the_drift_jobs_run_modules_the_image_holds() -> None:
    steps = json.loads(monitoring_definition(SETTINGS))["Steps"]
    modules = {s["Arguments"]["AppSpecification"]["ContainerEntrypoint"][2] for s in steps}
    assert modules == {"pipelines.monitoring.drift.cli", "pipelines.monitoring.quality.cli"}
    assert all(f"{m.replace('.', '/')}.py" in ENTRY_MODULES for m in modules)
