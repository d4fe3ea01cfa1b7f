"""SLO policy `exhaustedAction: freeze`: a release is refused (exit 16) and recorded while the freeze alarm is in
ALARM, and goes ahead once it is OK."""

from __future__ import annotations

from clinops import names
from clinops.exitcodes import ExitCode
from serving.release.evidence import CHECK_DEPLOYMENT
from serving.release.release import Releaser
from tests.serving.release.helpers import MODEL, endpoint_description, package_arn, seed_evidence, stack_aws, stubbed
from tests.serving.release.test_release import FAST_GATE, attempt, evidence, no_pulumi, releases  # noqa: F401

FREEZE = names.alarm_name("staging", MODEL, names.FREEZE_ALARM_SUFFIX)


def _freeze_staging(project) -> None:
    path = project / "Pulumi.staging.yaml"
    path.write_text(path.read_text().replace("exhaustedAction: none", "exhaustedAction: freeze"))


def _freeze_alarm(session, state: str) -> None:
    cloudwatch = session.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=FREEZE,
        MetricName="Invocation5XXErrors",
        Namespace="AWS/SageMaker",
        Statistic="Sum",
        Period=604800,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=FREEZE, StateValue=state, StateReason=f"test: budget {state}")


def test_frozen_release_is_refused_and_recorded(session, project, evidence, registry) -> None:  # noqa: F811
    _freeze_staging(project)
    [arn] = registry.approved()
    seed_evidence(evidence, "dev", "verification", CHECK_DEPLOYMENT, arn, passed=True)
    _freeze_alarm(session, "ALARM")
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_model_package", registry.describe(arn))
    releaser = Releaser(project, stack_aws(session, sagemaker=client), evidence, gate_options=FAST_GATE)
    refused = attempt(releaser, "staging", arn)
    assert refused.exit_code == ExitCode.RELEASES_FROZEN == 16
    assert FREEZE in refused.message and "fix:" in refused.message.lower()
    [entry] = releases(evidence, "staging")
    assert entry.details["exit_code"] == 16 and entry.details["freeze_alarm"] == FREEZE


def test_release_goes_ahead_once_the_freeze_alarm_is_ok(session, project, evidence, registry) -> None:  # noqa: F811
    _freeze_staging(project)
    [arn] = registry.approved()
    seed_evidence(evidence, "dev", "verification", CHECK_DEPLOYMENT, arn, passed=True)
    _freeze_alarm(session, "OK")
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_model_package", registry.describe(arn))
    busy = endpoint_description("staging", names.config_name("staging", MODEL, package_arn(3)), status="Updating")
    stub.add_response("describe_endpoint", busy, {"EndpointName": "clinops-staging-readmission-risk"})
    releaser = Releaser(
        project, stack_aws(session, sagemaker=client), evidence, gate_options=FAST_GATE, pulumi=no_pulumi(project)
    )
    refused = attempt(releaser, "staging", arn)
    assert refused.exit_code == ExitCode.ENDPOINT_BUSY  # past the freeze check, stopped by the next one
