"""Per-model SLOs as alarms: multi-window, multi-burn-rate alarms on the availability and latency error budgets,
an exhausted-budget alarm that opens the circuit breaker or freezes releases, the quality objectives on
adjudicated outcomes, and cost per 1,000 predictions against its target.

The arithmetic (tiers, rates, the exhausted-budget bound) is `clinops.slo`, cited from the SRE Workbook there.
CloudWatch needs every metric of one metric-math alarm on the same period, so each window is its own alarm
(period = window, one evaluation period: the datapoint *is* the window's burn rate) and a composite alarm ANDs
a tier's long and short windows. Only the composite alarms, the exhausted-budget, quality and cost alarms
notify the alert topic; the window alarms are their inputs.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from clinops.models import ModelConfig, Slo
from clinops.names import SLO_EXHAUSTED_SUFFIX, VARIANT, alarm_name, endpoint_name
from clinops.pricing import cost_expression
from clinops.slo import DAY, MAX_ALARM_RANGE_SECONDS, WORKBOOK_TIERS, BurnTier, exhausted_burn_rate
from infra.base import Platform
from infra.rollback_alarms import metric_query

LATENCY_BUDGET = 0.01  # a p99 objective allows 1% of invocations above it
COST_PERIOD_SECONDS = DAY
ENDPOINT_METRICS_NAMESPACE = "/aws/sagemaker/Endpoints"  # per-instance CPUUtilization, one sample a minute


def availability_expression(budget: float) -> str:
    """Burn rate of the availability budget: 5XX share of invocations / allowed share (no traffic: 0)."""
    return f"IF(invocations > 0, (errors / invocations) / {budget!r}, 0)"


def latency_expression() -> str:
    """Burn rate of the latency budget: `fast` is the percentile rank PR(0:objective) of ModelLatency, the share
    (%) of invocations at or under the objective; the rest is the bad share."""
    return f"IF(invocations > 0, ((100 - fast) / 100) / {LATENCY_BUDGET!r}, 0)"


class ModelSlo(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        platform: Platform,
        model: ModelConfig,
        slo: Slo,
        hourly_price: float,
        topic_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("clinops:serving:ModelSlo", name, None, opts)
        self._platform, self._topic, self._slo = platform, topic_arn, slo
        stack = platform.config.stack
        self.endpoint = endpoint_name(stack, model.name)
        self._model = model.name
        self._dims = {"EndpointName": self.endpoint, "VariantName": VARIANT}
        self.window_alarms: list[aws.cloudwatch.MetricAlarm] = []
        self.tier_alarms: list[aws.cloudwatch.CompositeAlarm] = []
        self.alarms: list[aws.cloudwatch.MetricAlarm] = []

        budget = slo.error_budget
        for tier in WORKBOOK_TIERS:
            self._tier("availability", tier, self._availability_queries, budget)
        # Latency: the fast tier only - the rollback alarm already guards p99 during a release; this pages when
        # slow answers burn the budget afterwards.
        self._tier("latency", WORKBOOK_TIERS[0], self._latency_queries, LATENCY_BUDGET)

        look_back = min(MAX_ALARM_RANGE_SECONDS, slo.window_days * DAY)
        exhausted = alarm_name(stack, model.name, SLO_EXHAUSTED_SUFFIX[slo.exhausted_action])
        self.exhausted = self._metric_alarm(
            exhausted,
            f"availability error budget ({slo.availability_percent}% over {slo.window_days} d) exhausted: the last "
            f"{look_back // DAY} d alone burned it. Action: {_action_text(slo.exhausted_action)}",
            threshold=exhausted_burn_rate(slo.window_days),
            queries=self._availability_queries(look_back, budget),
            notify=True,
            severity="page",
        )
        self.alarms.append(self.exhausted)
        quality = {"Model": model.name, "Variant": VARIANT}
        self.alarms.append(
            self._metric_alarm(
                alarm_name(stack, model.name, "slo-auc"),
                f"rolling AUC on adjudicated outcomes below the {slo.min_auc} objective (ticket)",
                threshold=slo.min_auc,
                queries=[
                    {**metric_query("auc", "clinops/quality", "AUC", quality, DAY, "Minimum"), "return_data": True}
                ],
                notify=True,
                severity="ticket",
                comparison="LessThanThreshold",
            )
        )
        self.alarms.append(
            self._metric_alarm(
                alarm_name(stack, model.name, "slo-calibration"),
                f"calibration slope more than {slo.max_calibration_slope_error} from 1 on adjudicated outcomes "
                "(ticket)",
                threshold=slo.max_calibration_slope_error,
                queries=[
                    metric_query("slope", "clinops/quality", "CalibrationSlope", quality, DAY, "Average"),
                    {"id": "error", "return_data": True, "label": "|slope - 1|", "expression": "ABS(slope - 1)"},
                ],
                notify=True,
                severity="ticket",
            )
        )
        self.cost_queries = cost_queries(self.endpoint, hourly_price, COST_PERIOD_SECONDS)
        self.alarms.append(
            self._metric_alarm(
                alarm_name(stack, model.name, "cost-per-1000"),
                f"cost per 1,000 predictions above the ${slo.cost_per_1000_usd} target (ticket)",
                threshold=slo.cost_per_1000_usd,
                queries=self.cost_queries,
                notify=True,
                severity="ticket",
            )
        )
        self.register_outputs(
            {
                "tierAlarms": [a.alarm_name for a in self.tier_alarms],
                "alarmNames": [a.name for a in self.alarms],
            }
        )

    # -- queries ---------------------------------------------------------------------------------------------

    def _sagemaker(self, qid: str, metric: str, period: int, stat: str = "Sum") -> dict:
        return metric_query(qid, "AWS/SageMaker", metric, self._dims, period, stat)

    def _availability_queries(self, period: int, budget: float) -> list[dict]:
        return [
            self._sagemaker("errors", "Invocation5XXErrors", period),
            self._sagemaker("invocations", "Invocations", period),
            {
                "id": "burn",
                "return_data": True,
                "label": "availability burn rate",
                "expression": availability_expression(budget),
            },
        ]

    def _latency_queries(self, period: int, budget: float) -> list[dict]:
        del budget  # fixed by the p99 objective
        threshold_us = self._slo.latency_p99_ms * 1000  # ModelLatency is in microseconds
        return [
            self._sagemaker("fast", "ModelLatency", period, f"PR(0:{threshold_us})"),
            self._sagemaker("invocations", "Invocations", period),
            {"id": "burn", "return_data": True, "label": "latency burn rate", "expression": latency_expression()},
        ]

    # -- alarms ----------------------------------------------------------------------------------------------

    def _tier(self, signal: str, tier: BurnTier, queries, budget: float) -> None:
        stack, rate = self._platform.config.stack, tier.burn_rate(self._slo.window_days)
        windows, names = [], []
        for label, seconds in (("long", tier.long_seconds), ("short", tier.short_seconds)):
            names.append(alarm_name(stack, self._model, f"slo-{signal}-{tier.name}-{label}"))
            windows.append(
                self._metric_alarm(
                    names[-1],
                    f"{signal} budget burn rate over {_span(seconds)} at or above {rate}x (input of the "
                    f"{tier.name} tier; notifies through it)",
                    threshold=rate,
                    queries=queries(seconds, budget),
                    notify=False,
                    severity=tier.notify,
                    comparison="GreaterThanOrEqualToThreshold",
                )
            )
        self.window_alarms += windows
        name = alarm_name(stack, self._model, f"slo-{signal}-{tier.name}")
        self.tier_alarms.append(
            aws.cloudwatch.CompositeAlarm(
                name,
                alarm_name=name,
                alarm_rule=" AND ".join(f'ALARM("{n}")' for n in names),
                alarm_description=f"{tier.notify.upper()}: {signal} error budget burning at {rate}x or faster over "
                f"{_span(tier.long_seconds)} and {_span(tier.short_seconds)} ({tier.budget_share:.0%} of the "
                f"{self._slo.window_days}-day budget gone at this pace); see RUNBOOK.md.",
                alarm_actions=[self._topic],
                ok_actions=[self._topic],
                tags=self._platform.tags(**{"clinops:model": self._model, "clinops:severity": tier.notify}),
                opts=self._platform.child(self, depends_on=windows),
            )
        )

    def _metric_alarm(
        self,
        name: str,
        description: str,
        *,
        threshold: float,
        queries: list[dict],
        notify: bool,
        severity: str,
        comparison: str = "GreaterThanOrEqualToThreshold",
    ) -> aws.cloudwatch.MetricAlarm:
        topic = [self._topic] if notify else []
        return aws.cloudwatch.MetricAlarm(
            name,
            name=name,
            alarm_description=f"{description}. See RUNBOOK.md.",
            comparison_operator=comparison,
            threshold=threshold,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            metric_queries=queries,
            # No traffic or no backtest is not evidence of a breach; silent monitors have their own alarms.
            treat_missing_data="notBreaching",
            alarm_actions=topic,
            ok_actions=topic,
            # A silent metric must reach a person too (AWS Config cloudwatch-alarm-action-check, HIPAA pack).
            insufficient_data_actions=topic,
            tags=self._platform.tags(**{"clinops:model": self._model, "clinops:severity": severity}),
            opts=self._platform.child(self),
        )


def cost_queries(endpoint: str, hourly_price: float, period: int) -> list[dict]:
    """Metric math for cost per 1,000 predictions of one endpoint (see clinops.pricing.cost_expression)."""
    dims = {"EndpointName": endpoint, "VariantName": VARIANT}
    return [
        metric_query("hostminutes", ENDPOINT_METRICS_NAMESPACE, "CPUUtilization", dims, period, "SampleCount"),
        metric_query("invocations", "AWS/SageMaker", "Invocations", dims, period, "Sum"),
        {
            "id": "cost",
            "return_data": True,
            "label": "cost per 1,000 predictions (USD)",
            "expression": cost_expression(hourly_price, "hostminutes", "invocations"),
        },
    ]


def _span(seconds: int) -> str:
    if seconds % DAY == 0:
        return f"{seconds // DAY} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


def _action_text(action: str) -> str:
    return {
        "breaker": "the circuit breaker switches to the last-known-good model",
        "freeze": "clinops release refuses new releases while this alarm is in ALARM",
        "none": "notify only",
    }[action]
