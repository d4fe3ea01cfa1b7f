"""Package review: approval status, segregation of duties, registered metrics (moto registry + Stubber)."""

from __future__ import annotations

import json

import pytest

from clinops.exitcodes import (
    ExitCode,
    PackageNotReleasable,
    QualityBelowThreshold,
    SegregationOfDuties,
    UnusableInput,
)
from clinops.identity import check_segregation, normalize_principal, parse_user_context
from clinops.models import ModelConfig, QualityGate
from serving.release.package import review_package
from serving.release.quality import read_metrics
from tests.serving.release.helpers import (
    AUTHOR,
    DEV_ACCOUNT,
    MODEL,
    Registry,
    package_arn,
    role_session,
    stack_aws,
    stubbed,
)

GOVERNANCE = [f"arn:aws:iam::{DEV_ACCOUNT}:role/clinical-governance"]
SCIENCE = [f"arn:aws:iam::{DEV_ACCOUNT}:role/data-science"]
READMISSION = ModelConfig(name=MODEL, description="30-day readmission risk at discharge")


def _review(session, registry: Registry, arn: str, *, model: ModelConfig = READMISSION, **identities):
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_model_package", registry.describe(arn, **identities), {"ModelPackageName": arn})
    return review_package(stack_aws(session, sagemaker=client), arn, model, approvers=GOVERNANCE, authors=SCIENCE)


# -- identities ------------------------------------------------------------------------------------------


def test_assumed_role_sessions_normalize_to_their_role() -> None:
    assert normalize_principal("arn:aws:sts::123456789012:assumed-role/clinical-governance/bob") == (
        "123456789012:role/clinical-governance",
        "bob",
    )
    assert normalize_principal("arn:aws:iam::123456789012:role/teams/clinical-governance") == (
        "123456789012:role/clinical-governance",
        None,
    )
    assert parse_user_context({}) is None
    assert parse_user_context({"IamIdentity": {"Arn": "not-an-arn"}}) is None


def test_same_source_identity_through_different_roles_is_the_same_person() -> None:
    package = {
        "CreatedBy": role_session("data-science", "s1", "alice"),
        "LastModifiedBy": role_session("clinical-governance", "s2", "ALICE"),
    }
    with pytest.raises(SegregationOfDuties, match="approved by its own author"):
        check_segregation(package, GOVERNANCE, SCIENCE)


def test_shared_role_without_a_person_cannot_prove_segregation() -> None:
    package = {
        "CreatedBy": role_session("clinical-governance", "alice"),
        "LastModifiedBy": role_session("clinical-governance", "bob"),
    }
    with pytest.raises(SegregationOfDuties, match="may be the same person"):
        check_segregation(package, GOVERNANCE, SCIENCE)


def test_studio_users_sharing_an_execution_role_are_told_apart_by_profile() -> None:
    shared = role_session("clinical-governance", "SageMaker")
    package = {
        "CreatedBy": {**shared, "UserProfileName": "alice", "DomainId": "d-1"},
        "LastModifiedBy": {**shared, "UserProfileName": "bob", "DomainId": "d-1"},
    }
    author, approver = check_segregation(package, GOVERNANCE, [])
    assert (author.studio_profile, approver.studio_profile) == ("d-1/alice", "d-1/bob")


def test_approver_must_act_as_a_configured_approver_role() -> None:
    package = {"CreatedBy": AUTHOR, "LastModifiedBy": role_session("ci-release", "bot", "deploy-bot")}
    with pytest.raises(SegregationOfDuties, match="not a configured approver"):
        check_segregation(package, GOVERNANCE, SCIENCE)
    package = {
        "CreatedBy": role_session("ml-eng", "carol", "carol"),
        "LastModifiedBy": role_session("data-science", "d", "dan"),
    }
    with pytest.raises(SegregationOfDuties, match="configured as an author role"):
        check_segregation(package, [], SCIENCE)


# -- the registry (moto), identities layered on with Stubber ---------------------------------------------


def test_approved_package_by_another_person_with_good_metrics_passes(session, registry: Registry) -> None:
    [arn] = registry.approved()
    review = _review(session, registry, arn)
    assert review.version == 1
    assert review.approver.source_identity == "bob@hospital.example"
    assert review.metrics.auc == pytest.approx(0.81)
    assert review.approval_description == "clinical review CR-1042"


def test_pending_package_is_refused(session, registry: Registry) -> None:
    arn = registry.register()
    with pytest.raises(PackageNotReleasable, match="PendingManualApproval, not Approved") as caught:
        _review(session, registry, arn)
    assert caught.value.exit_code == ExitCode.PACKAGE_NOT_RELEASABLE


def test_rejected_package_is_refused_for_good(session, registry: Registry) -> None:
    arn = registry.set_status(registry.register(), "Rejected", "calibration drifts in the over-80s")
    with pytest.raises(PackageNotReleasable, match=r"Rejected.*over-80s.*never be released"):
        _review(session, registry, arn)


def test_missing_package_is_refused(session, registry: Registry) -> None:
    registry.approved()
    missing = package_arn(7)
    client, stub = stubbed("sagemaker")
    stub.add_client_error("describe_model_package", "ValidationException", f"Model package {missing} not found")
    with pytest.raises(PackageNotReleasable, match="not found in the registry"):
        review_package(stack_aws(session, sagemaker=client), missing, READMISSION, approvers=[], authors=[])


def test_moto_records_the_author_as_approver_which_is_refused(session, registry: Registry) -> None:
    """Straight from moto (no Stubber): CreatedBy and LastModifiedBy are the same Studio profile."""
    [arn] = registry.approved()
    with pytest.raises(SegregationOfDuties, match="approved by its own author") as caught:
        review_package(stack_aws(session), arn, READMISSION, approvers=[], authors=[])
    assert caught.value.exit_code == ExitCode.SEGREGATION_OF_DUTIES


def test_unknown_approver_is_refused(session, registry: Registry) -> None:
    [arn] = registry.approved()
    with pytest.raises(SegregationOfDuties, match="approver \\(LastModifiedBy\\) identity is unknown"):
        _review(session, registry, arn, approver=None)


def test_package_of_another_model_is_unusable(session, registry: Registry) -> None:
    with pytest.raises(UnusableInput, match="belongs to group 'sepsis-warning'"):
        review_package(stack_aws(session), package_arn(1, "sepsis-warning"), READMISSION, approvers=[], authors=[])


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"auc": "0.66", "brier": "0.12", "max_subgroup_auc_gap": "0.04"}, "auc 0.6600 must be at least 0.7"),
        ({"auc": "0.81", "brier": "0.31", "max_subgroup_auc_gap": "0.04"}, "brier 0.3100 must be at most 0.25"),
        ({"auc": "0.81", "brier": "0.12", "max_subgroup_auc_gap": "0.16"}, "max_subgroup_auc_gap 0.1600"),
        ({"auc": "0.81", "max_subgroup_auc_gap": "0.04"}, "brier is not recorded"),
        ({"auc": "NaN", "brier": "0.12", "max_subgroup_auc_gap": "0.04"}, "auc is not recorded"),
    ],
)
def test_metrics_below_threshold_or_missing_are_refused(session, registry: Registry, metadata, problem) -> None:
    [arn] = registry.approved(metadata=metadata)
    with pytest.raises(QualityBelowThreshold, match=problem) as caught:
        _review(session, registry, arn)
    assert caught.value.details["thresholds"]["min_auc"] == 0.70


def test_stack_thresholds_apply_not_the_pipeline_defaults(session, registry: Registry) -> None:
    [arn] = registry.approved()
    strict = ModelConfig(
        name=MODEL, description="30-day readmission risk at discharge", quality=QualityGate(min_auc=0.85)
    )
    with pytest.raises(QualityBelowThreshold, match=r"auc 0\.8100 must be at least 0\.85"):
        _review(session, registry, arn, model=strict)


def test_metrics_fall_back_to_the_pipelines_model_quality_and_fairness_files(session, registry: Registry) -> None:
    """The pipeline attaches model-quality.json and fairness.json as ModelMetrics (pipelines/definition_steps)."""
    s3 = session.client("s3")
    s3.create_bucket(Bucket="pipeline-artifacts")
    quality = {"version": 0.0, "binary_classification_metrics": {"auc": {"value": 0.79, "standard_deviation": 0.01}}}
    fairness = {"attributes": {"sex": {"gaps": {"auc": {"value": 0.03}}}, "age": {"gaps": {"auc": {"value": 0.06}}}}}
    s3.put_object(Bucket="pipeline-artifacts", Key="eval/model-quality.json", Body=json.dumps(quality))
    s3.put_object(Bucket="pipeline-artifacts", Key="fair/fairness.json", Body=json.dumps(fairness))
    package = {
        "CustomerMetadataProperties": {"brier": "0.11"},
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": "s3://pipeline-artifacts/eval/model-quality.json",
                }
            },
            "Bias": {
                "Report": {"ContentType": "application/json", "S3Uri": "s3://pipeline-artifacts/fair/fairness.json"}
            },
        },
    }
    metrics = read_metrics(package, stack_aws(session))
    assert (metrics.auc, metrics.max_subgroup_auc_gap, metrics.brier) == (0.79, 0.06, 0.11)
    assert metrics.sources["auc"].endswith("model-quality.json")
    fairness["attributes"]["age"]["gaps"]["auc"] = None  # an attribute that could not be judged
    s3.put_object(Bucket="pipeline-artifacts", Key="fair/fairness.json", Body=json.dumps(fairness))
    assert read_metrics(package, stack_aws(session)).max_subgroup_auc_gap is None
