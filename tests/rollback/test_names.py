"""The Lambda-side names (standard library only) agree with the modules that create the resources."""

from __future__ import annotations

from serving.rollback import names
from tests.rollback.conftest import MODEL, STACK, package


def test_endpoint_configuration_and_alarm_names_match_the_pulumi_components() -> None:
    import inspect
    from types import SimpleNamespace

    import serving.alarms
    import serving.endpoint

    platform = SimpleNamespace(config=SimpleNamespace(stack=STACK))
    assert names.endpoint_name(STACK, MODEL) == serving.endpoint.endpoint_name(platform, MODEL)
    assert names.config_name(STACK, MODEL, package(7)) == serving.endpoint.config_name(platform, MODEL, package(7))
    assert names.VARIANT == serving.endpoint.VARIANT
    source = inspect.getsource(serving.alarms.RollbackAlarms)
    for suffix in names.ROLLBACK_ALARM_SUFFIXES:
        assert f'f"{{endpoint}}-{suffix}"' in source  # the alarm the component names with this suffix


def test_the_training_pipeline_name_matches_the_pipeline_definition() -> None:
    from types import SimpleNamespace

    from pipelines.definition import PipelineDefinitionSettings

    # The property only reads `model_name`; calling it directly keeps this test independent of the settings'
    # other (changing) fields.
    definition_name = PipelineDefinitionSettings.pipeline_name.fget(SimpleNamespace(model_name=MODEL))
    assert names.training_pipeline_name(MODEL) == definition_name


def test_a_model_never_takes_a_longer_models_alarms() -> None:
    models = ("sepsis", "sepsis-warning")
    assert names.model_for_alarm(STACK, models, "clinops-prod-sepsis-warning-drift") == "sepsis-warning"
    assert names.model_for_alarm(STACK, models, "clinops-prod-sepsis-drift") == "sepsis"
    assert names.model_for_alarm(STACK, models, "clinops-prod-sepsis-warning-cpu") is None
