"""A release publishes the package's drift baseline to s3://<artifacts>/<model>/baseline/ with the artifacts key
(moto S3 and KMS; the registry answer comes from a Stubber, as in the other release tests)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from clinops.config import load_from_stack_file
from clinops.exitcodes import PackageNotReleasable
from serving.release.baseline import BASELINE_FILES, baseline_location, publish_baseline
from tests.serving.release.helpers import DEV_ACCOUNT, MODEL, Registry, stack_aws, stubbed

BUILD_BUCKET = f"clinops-dev-{DEV_ACCOUNT}-model-artifacts"
MODEL_KEY = f"{MODEL}/runs/exec-1/train/output/model.tar.gz"
BASELINE = {"format_version": 1, "rows": 1200, "features": {"age": {"kind": "numeric"}}}


def bundle_archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_account(session: boto3.Session, files: dict[str, bytes]) -> str:
    """The dev stack's artifacts bucket holding a trained model.tar.gz, and its artifacts key (by alias)."""
    kms, s3 = session.client("kms"), session.client("s3")
    key = kms.create_key(Description="artifacts")["KeyMetadata"]
    kms.create_alias(AliasName="alias/clinops-dev-artifacts", TargetKeyId=key["KeyId"])
    s3.create_bucket(Bucket=BUILD_BUCKET)
    s3.put_object(Bucket=BUILD_BUCKET, Key=MODEL_KEY, Body=bundle_archive(files))
    return key["Arn"]


def with_model_data(description: dict[str, Any], url: str | None) -> dict[str, Any]:
    container = description["InferenceSpecification"]["Containers"][0]
    if url:
        container["ModelDataUrl"] = url
    return description


def published_stub(registry: Registry, arn: str, url: str | None = f"s3://{BUILD_BUCKET}/{MODEL_KEY}") -> Any:
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_model_package", with_model_data(registry.describe(arn), url))
    return client


GOOD = {
    "baseline.json": json.dumps(BASELINE).encode(),
    "metadata.json": b'{"feature_columns": ["age"]}',
    "contract.yaml": b"name: readmission-risk\n",
    "model.joblib": b"the served model",
    "train.csv": b"not copied",
}


def test_release_publishes_the_baseline_with_the_artifacts_key(session, project: Path, registry: Registry) -> None:
    key_arn = build_account(session, GOOD)
    [arn] = registry.approved()
    config = load_from_stack_file("dev", project)
    aws = stack_aws(session, sagemaker=published_stub(registry, arn))
    published = publish_baseline(aws, config, MODEL, arn)
    bucket, prefix = baseline_location(config, MODEL)
    assert (bucket, prefix) == (BUILD_BUCKET, f"{MODEL}/baseline/")  # what pipelines.definitions.monitoring reads
    assert published.keys == sorted(f"{prefix}{name}" for name in BASELINE_FILES)
    s3 = session.client("s3")
    for name in BASELINE_FILES:
        head = s3.head_object(Bucket=bucket, Key=f"{prefix}{name}")
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key_arn, name
    body = s3.get_object(Bucket=bucket, Key=f"{prefix}baseline.json")["Body"].read()
    assert json.loads(body) == BASELINE
    # the model goes with the baseline (the drift job explains the window with it); nothing else leaves the bundle
    assert "train.csv" not in json.dumps(published.as_evidence())
    model_key = f"{prefix}model.joblib"
    assert published.as_evidence()["sha256"][model_key] == hashlib.sha256(GOOD["model.joblib"]).hexdigest()
    assert s3.get_object(Bucket=bucket, Key=model_key)["Body"].read() == GOOD["model.joblib"]


@pytest.mark.parametrize(
    ("files", "url", "fragment"),
    [
        ({k: v for k, v in GOOD.items() if k != "baseline.json"}, f"s3://{BUILD_BUCKET}/{MODEL_KEY}", "no baseline"),
        (GOOD, None, "no S3 ModelDataUrl"),
    ],
)
def test_a_package_without_a_baseline_is_refused_with_the_fix(
    session, project: Path, registry: Registry, files: dict[str, bytes], url: str | None, fragment: str
) -> None:
    build_account(session, files)
    [arn] = registry.approved()
    aws = stack_aws(session, sagemaker=published_stub(registry, arn, url))
    with pytest.raises(PackageNotReleasable, match=fragment) as caught:
        publish_baseline(aws, load_from_stack_file("dev", project), MODEL, arn)
    assert "fix:" in caught.value.message
    objects = session.client("s3").list_objects_v2(Bucket=BUILD_BUCKET, Prefix=f"{MODEL}/baseline/")
    assert objects["KeyCount"] == 0  # nothing half-published
