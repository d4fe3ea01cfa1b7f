"""Fixtures for release/verify/shadow tests: fake AWS credentials, moto, a scratch project with stack files."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.serving.release.helpers import DEV_ACCOUNT, REGION, Registry, boto_session, make_project

os.environ.pop("MOTO_ACCOUNT_ID", None)  # moto maps assumed-role credentials to accounts only without it


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


_PLANS: dict[tuple[str, str], dict] = {}


@pytest.fixture(autouse=True)
def _render_once_per_stack_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering is deterministic in the stack file's text and costs seconds: several tests release the same
    package to the same stack, so each distinct staged file is rendered once per session (the gate still
    judges every plan)."""
    import infra.render

    real = infra.render.render

    def render(stack: str, program=None, root: Path | None = None, overrides=None) -> dict:
        if program is not None or overrides or root is None:
            return real(stack, program, root, overrides)
        key = (stack, (root / f"Pulumi.{stack}.yaml").read_text())
        if key not in _PLANS:
            _PLANS[key] = real(stack, root=root)
        return copy.deepcopy(_PLANS[key])

    monkeypatch.setattr(infra.render, "render", render)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def session(aws: None) -> boto3.Session:
    return boto_session()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


@pytest.fixture
def registry(session: boto3.Session) -> Registry:
    assert session.client("sts").get_caller_identity()["Account"] == DEV_ACCOUNT
    return Registry(session.client("sagemaker"))
