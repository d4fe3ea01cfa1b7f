"""The tracking URI a cloud step gets (the stack's MLflow server ARN) resolves through the sagemaker-mlflow plugin,
offline: its tracking store, the regional MLflow host behind the VPC endpoint, and SigV4 signing."""

from __future__ import annotations

import pytest

from pipelines import tracking

ARN = "arn:aws:sagemaker:us-east-1:111111111111:mlflow-tracking-server/clinops-dev-mlflow"


def test_a_server_arn_resolves_through_the_sagemaker_mlflow_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking._tracking_service.utils import _get_store
    from sagemaker_mlflow.auth_provider import AuthProvider

    monkeypatch.delenv("SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT", raising=False)
    assert tracking.is_managed_server(ARN)
    store = _get_store(ARN)
    assert type(store).__module__.startswith("sagemaker_mlflow")
    creds = store.get_host_creds()
    assert (creds.host, creds.auth) == ("https://us-east-1.experiments.sagemaker.aws", "arn")
    provider = AuthProvider()
    provider.host_metadata_provider.set_arn(ARN)
    assert provider._get_auth_service_name() == "sagemaker-mlflow"  # the IAM service the intents name


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite:///out/mlflow/mlflow.db",
        "https://us-east-1.experiments.sagemaker.aws",
        "arn:aws:sagemaker:us-east-1:111111111111:model-package/readmission-risk/1",
        ARN + "/extra",
    ],
)
def test_only_a_tracking_server_arn_counts_as_the_managed_server(uri: str) -> None:
    assert not tracking.is_managed_server(uri)
