"""Publish a released package's drift baseline where the stack's drift pipeline reads it.

The daily drift and quality jobs read `s3://<stack's model-artifacts bucket>/<model>/baseline/` (see
`pipelines.definitions.monitoring`). The baseline is computed at training time and lives only inside the
package's model bundle (`model.tar.gz`: `baseline.json`, `metadata.json`, `contract.yaml`, format in
`pipelines/bundle.py`), so a release that deploys a package also copies those files there, with the model itself
(`model.joblib`: the drift job explains the captured window with it, to compare what the model leans on against
training). Each is encrypted with the stack's artifacts key, the only key that bucket accepts, and its digest goes
to the evidence. In staging and prod the bundle is read cross-account from the build account (the deployer role's
`ReadPromotedModels` / `DecryptPromotedModels` grants).
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from clinops.config import StackConfig
from clinops.exitcodes import AwsUnavailable, PackageNotReleasable
from serving.release.aws import StackAws, error_code, error_message
from serving.release.package import describe_package

BASELINE_FILES = ("baseline.json", "metadata.json", "contract.yaml", "model.joblib")
REQUIRED = "baseline.json"
# A baseline is a few KB and the served model a few MB; refuse anything absurd rather than hold it in memory.
MAX_FILE_BYTES = {"model.joblib": 512 * 1024 * 1024}
MAX_BASELINE_FILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class PublishedBaseline:
    bucket: str
    keys: list[str]
    kms_key_arn: str
    source: str
    sha256: dict[str, str]  # published key -> digest, so an auditor can tie what the drift job read to the package

    def as_evidence(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "keys": self.keys,
            "kms_key_arn": self.kms_key_arn,
            "source": self.source,
            "sha256": self.sha256,
        }


def baseline_location(config: StackConfig, model: str) -> tuple[str, str]:
    """(bucket, prefix) the drift pipeline reads; the bucket is named like `Platform.bucket_name`."""
    return f"clinops-{config.stack}-{config.account_id}-model-artifacts", f"{model}/baseline/"


def artifacts_key_alias(config: StackConfig) -> str:
    """The alias `infra.keys` gives the stack's artifacts key."""
    return f"alias/clinops-{config.stack}-artifacts"


def model_data_url(package: dict[str, Any], arn: str) -> tuple[str, str]:
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
    url = str((containers[0] if containers else {}).get("ModelDataUrl") or "")
    if not url.startswith("s3://") or "/" not in url.removeprefix("s3://"):
        raise PackageNotReleasable(
            f"{arn} has no S3 ModelDataUrl (got {url or 'nothing'}), so its drift baseline cannot be published; "
            "fix: register packages through the training pipeline, which points the container at model.tar.gz"
        )
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


def baseline_files(archive: bytes, source: str) -> dict[str, bytes]:
    """The baseline files of a model bundle, by name; only regular files, wherever they sit in the archive."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if name not in BASELINE_FILES or not member.isfile() or name in found:
                    continue
                limit = MAX_FILE_BYTES.get(name, MAX_BASELINE_FILE_BYTES)
                if member.size > limit:
                    raise PackageNotReleasable(f"{source}: {member.name} is {member.size} bytes, over its {limit}")
                handle = tar.extractfile(member)
                found[name] = handle.read() if handle else b""
    except tarfile.TarError as exc:
        raise PackageNotReleasable(f"{source} is not a readable model archive ({exc})") from None
    if REQUIRED not in found:
        raise PackageNotReleasable(
            f"{source} holds no {REQUIRED}, so drift monitoring would have no reference; fix: retrain with the "
            "current pipeline (pipelines/bundle.py writes it into every bundle)"
        )
    return found


def publish_baseline(aws: StackAws, config: StackConfig, model: str, package_arn: str) -> PublishedBaseline:
    """Copy the package's baseline files to the stack's baseline prefix with the artifacts key."""
    source_bucket, source_key = model_data_url(describe_package(aws, package_arn), package_arn)
    source = f"s3://{source_bucket}/{source_key}"
    try:
        body = aws.call("s3", "get_object", Bucket=source_bucket, Key=source_key)["Body"].read()
        key_arn = aws.call("kms", "describe_key", KeyId=artifacts_key_alias(config))["KeyMetadata"]["Arn"]
        bucket, prefix = baseline_location(config, model)
        keys, digests = [], {}
        for name, data in sorted(baseline_files(body, source).items()):
            # name the key explicitly: the bucket refuses any other key, and aws:kms without one means aws/s3
            aws.call(
                "s3",
                "put_object",
                Bucket=bucket,
                Key=f"{prefix}{name}",
                Body=data,
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=key_arn,
            )
            keys.append(f"{prefix}{name}")
            digests[f"{prefix}{name}"] = hashlib.sha256(data).hexdigest()
    except ClientError as exc:
        raise AwsUnavailable(
            f"could not publish the drift baseline of {package_arn} ({error_code(exc)}: {error_message(exc)}); "
            "fix: the deployer role needs s3:GetObject on the package's model data and s3:PutObject on "
            f"<artifacts>/{model}/baseline/ with the artifacts key",
            {"source": source},
        ) from None
    return PublishedBaseline(bucket, keys, key_arn, source, digests)
