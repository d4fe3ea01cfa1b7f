"""Typed settings for a pipeline run: the release gates and the training knobs.

Defaults are the platform's floor for a clinical model; a hospital may tighten them per model. The same
objects drive the local run and, as pipeline parameters, the SageMaker pipeline.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# The verdicts a run's gates end with (steps.decide); PENDING is also SageMaker's ModelApprovalStatus for a model
# waiting for its human approver. Here, not in the step, so pipeline definitions name it without loading pandas.
PENDING, REJECTED, INCONCLUSIVE = "PendingManualApproval", "Rejected", "Inconclusive"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GateSettings(_Frozen):
    """What a candidate must show before it may wait for a human approver."""

    min_auc: float = Field(default=0.70, ge=0.5, le=1.0, description="minimum test AUC-ROC")
    max_subgroup_auc_gap: float = Field(
        default=0.10, gt=0.0, le=1.0, description="largest AUC difference allowed between subgroups"
    )
    max_subgroup_tpr_gap: float = Field(
        default=0.10,
        gt=0.0,
        le=1.0,
        description="largest sensitivity (TPR) difference allowed between subgroups (equal opportunity)",
    )
    max_subgroup_fpr_gap: float = Field(
        default=0.10, gt=0.0, le=1.0, description="largest false-alarm rate (FPR) difference allowed between subgroups"
    )
    max_comparator_shortfall: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="how much test AUC the candidate may trail the simple comparator trained beside it",
    )
    max_regression: float = Field(
        default=0.02, ge=0.0, le=1.0, description="how much AUC may drop below the current approved model"
    )
    min_subgroup_size: int = Field(default=100, ge=1, description="test rows a subgroup needs to be judged")
    min_subgroup_events: int = Field(
        default=10, ge=1, description="positives and negatives each a subgroup needs for its AUC to mean anything"
    )


# Which way is stricter for each gate: a limit moved the other way from its default is a relaxation.
_STRICTER_IS_HIGHER = {"min_auc": True, "min_subgroup_size": True, "min_subgroup_events": True}


def relaxed_limits(gate: GateSettings) -> list[dict[str, float | str]]:
    """Every gate limit set looser than the platform default, as {limit, default, value}."""
    defaults = GateSettings()
    relaxed: list[dict[str, float | str]] = []
    for name in GateSettings.model_fields:
        value, default = getattr(gate, name), getattr(defaults, name)
        looser = value < default if _STRICTER_IS_HIGHER.get(name, False) else value > default
        if looser:
            relaxed.append({"limit": name, "default": default, "value": value})
    return relaxed


def describe_relaxations(relaxed: list[dict[str, float | str]], by: str | None) -> str:
    """One line for cards, tags and logs: 'min_auc 0.6 (default 0.7), ... relaxed by alice'."""
    if not relaxed:
        return ""
    limits = ", ".join(f"{r['limit']} {r['value']:g} (default {r['default']:g})" for r in relaxed)
    return f"{limits}; relaxed by {by or 'an unnamed user'}"


class TrainingSettings(_Frozen):
    """How data is split and the model is fitted; everything seeded so a rerun reproduces the model."""

    seed: int = Field(default=42, ge=0)
    test_fraction: float = Field(default=0.2, gt=0.0, lt=0.5)
    calibration_fraction: float = Field(default=0.2, gt=0.0, lt=0.5)
    target_sensitivity: float = Field(
        default=0.70, gt=0.0, lt=1.0, description="the operating threshold is set to reach this on calibration data"
    )
    learning_rate: float = Field(default=0.06, gt=0.0, le=1.0)
    max_iter: int = Field(default=300, ge=10, le=5000)
    max_leaf_nodes: int = Field(default=31, ge=2)
    min_samples_leaf: int = Field(default=40, ge=1)
    l2_regularization: float = Field(default=1.0, ge=0.0)
    threads: int = Field(
        default=1,
        ge=0,
        description="OpenMP threads for fitting (0 = all cores); 1 avoids spin-wait stalls on "
        "small shared VMs, raise it on a dedicated training instance",
    )


class PipelineSettings(_Frozen):
    gate: GateSettings = Field(default_factory=GateSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
