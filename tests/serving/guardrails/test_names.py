"""The Lambda-side names (standard library only) agree with the modules that create the resources."""

from __future__ import annotations

from clinops import names
from tests.serving.conftest import MODEL, STACK, package


def test_names_match_what_the_rendered_stack_declares() -> None:
    """The Lambdas cannot import Pulumi, so they hold the names themselves: check them against a real render."""
    from tests.conftest import rendered

    states = [s["newState"] for s in rendered("prod")["steps"]]
    declared = {(s["type"].split(":")[-1], s["inputs"].get("name")) for s in states}
    model, pin, lkg = "readmission-risk", package(2), package(1)
    assert ("Endpoint", names.endpoint_name("prod", model)) in declared
    for arn in (pin, lkg):
        assert ("EndpointConfiguration", names.config_name("prod", model, arn)) in declared
    for suffix in (*names.ROLLBACK_ALARM_SUFFIXES, *names.BREAKER_ALARM_SUFFIXES):
        assert ("MetricAlarm", names.alarm_name("prod", model, suffix)) in declared
    assert ("Parameter", names.pinned_parameter("prod", model)) in declared
    assert ("Parameter", names.last_known_good_parameter("prod", model)) in declared
    variants = next(s for s in states if s["type"].endswith("EndpointConfiguration"))["inputs"]["productionVariants"]
    assert variants[0]["variantName"] == names.VARIANT


def test_the_training_pipeline_name_matches_the_pipeline_definition() -> None:
    from types import SimpleNamespace

    from pipelines.definitions.settings import PipelineDefinitionSettings

    # The property only reads `model_name`; calling it directly keeps this test independent of the settings'
    # other (changing) fields.
    definition_name = PipelineDefinitionSettings.pipeline_name.fget(SimpleNamespace(model_name=MODEL))
    assert names.training_pipeline_name(MODEL) == definition_name


def test_a_model_never_takes_a_longer_models_alarms() -> None:
    models = ("sepsis", "sepsis-warning")
    assert names.model_for_alarm(STACK, models, "clinops-prod-sepsis-warning-drift") == "sepsis-warning"
    assert names.model_for_alarm(STACK, models, "clinops-prod-sepsis-drift") == "sepsis"
    assert names.model_for_alarm(STACK, models, "clinops-prod-sepsis-warning-cpu") is None
