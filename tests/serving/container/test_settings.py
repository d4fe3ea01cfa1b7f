"""Server settings from the container's environment: SageMaker's worker variable, the drain bound, the limits."""

from __future__ import annotations

import pytest

from serving.container.settings import DEFAULT_MAX_BODY_BYTES, ServerSettings, SettingsError, available_cpus


def test_workers_default_to_the_cpus_and_follow_sagemakers_variable() -> None:
    assert ServerSettings.from_env({}).workers == available_cpus()
    assert ServerSettings.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": "3"}).workers == 3
    assert DEFAULT_MAX_BODY_BYTES == 6_291_456  # InvokeEndpoint's Body limit


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SAGEMAKER_MODEL_SERVER_WORKERS": "0"}, "SAGEMAKER_MODEL_SERVER_WORKERS must be positive"),
        ({"SAGEMAKER_MODEL_SERVER_WORKERS": "two"}, "must be a whole number"),
        ({"CLINOPS_DRAIN_SECONDS": "30"}, "CLINOPS_DRAIN_SECONDS must be below 30"),
        ({"CLINOPS_REQUEST_SECONDS": "-1"}, "CLINOPS_REQUEST_SECONDS must be positive"),
    ],
)
def test_unusable_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        ServerSettings.from_env(env)
