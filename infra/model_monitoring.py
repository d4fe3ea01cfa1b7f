"""After the bake: drift and quality alarms (the circuit breaker and retraining listen to them) and a dashboard
per model — traffic, latency, errors, drift, quality, deployments and rollbacks on one page.

The drift job publishes `clinops/drift` once per run and the delayed-label backtest `clinops/quality`; both are
daily, so these alarms use one-day periods and act only on `sustainedRuns` consecutive bad results.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from clinops.models import ModelConfig
from clinops.names import VARIANT, alarm_name, endpoint_name
from infra.base import Platform
from infra.rollback_alarms import SERVING_NAMESPACE

DAY = 86400


class ModelMonitoring(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        platform: Platform,
        model: ModelConfig,
        topic_arn: pulumi.Input[str],
        rollback_alarms: list[aws.cloudwatch.MetricAlarm],
        cost_queries: list[dict] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("clinops:serving:ModelMonitoring", name, None, opts)
        self._platform, self._topic = platform, topic_arn
        stack, cfg = platform.config.stack, model.monitoring
        dims = {"Model": model.name, "Variant": VARIANT}
        self.alarms = [
            self._alarm(
                alarm_name(stack, model.name, "drift"),
                "clinops/drift",
                "DriftedFeatures",
                dims,
                "GreaterThanOrEqualToThreshold",
                cfg.drifted_features_alarm,
                cfg.sustained_runs,
                f"{cfg.drifted_features_alarm}+ input features drifted from the training baseline",
            ),
            self._alarm(
                alarm_name(stack, model.name, "score-drift"),
                "clinops/drift",
                "ScorePSI",
                dims,
                "GreaterThanOrEqualToThreshold",
                cfg.score_psi_alarm,
                cfg.sustained_runs,
                f"risk-score distribution PSI at or above {cfg.score_psi_alarm}",
            ),
            self._alarm(
                alarm_name(stack, model.name, "quality"),
                "clinops/quality",
                "AUC",
                dims,
                "LessThanThreshold",
                cfg.min_auc_alarm,
                cfg.sustained_runs,
                f"rolling AUC on adjudicated outcomes below {cfg.min_auc_alarm}",
            ),
        ]
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{model.name}-dashboard",
            dashboard_name=f"{endpoint_name(stack, model.name)}",
            dashboard_body=pulumi.Output.all(*[a.arn for a in [*rollback_alarms, *self.alarms]]).apply(
                lambda arns: json.dumps(
                    dashboard(platform.region, endpoint_name(stack, model.name), model.name, arns, cost_queries),
                    sort_keys=True,
                )
            ),
            opts=platform.child(self),
        )
        self.register_outputs({"alarmNames": [a.name for a in self.alarms]})

    def _alarm(
        self,
        name: str,
        namespace: str,
        metric: str,
        dims: dict[str, str],
        comparison: str,
        threshold: float,
        runs: int,
        description: str,
    ) -> aws.cloudwatch.MetricAlarm:
        platform = self._platform
        return aws.cloudwatch.MetricAlarm(
            name,
            name=name,
            namespace=namespace,
            metric_name=metric,
            dimensions=dims,
            statistic="Maximum" if comparison.startswith("Greater") else "Minimum",
            period=DAY,
            evaluation_periods=runs,
            datapoints_to_alarm=runs,
            comparison_operator=comparison,
            threshold=threshold,
            # No result (the job did not run, too few rows) is not evidence of drift: the job's own
            # InsufficientData metric and its failure alarm cover a silent monitor.
            treat_missing_data="notBreaching",
            alarm_description=f"{description} for {runs} consecutive daily runs. Trips the circuit breaker to the "
            "last-known-good model and opens a retraining request; see RUNBOOK.md.",
            alarm_actions=[self._topic],
            ok_actions=[self._topic],
            # A silent metric must reach a person too (AWS Config cloudwatch-alarm-action-check, HIPAA pack).
            insufficient_data_actions=[self._topic],
            tags=platform.tags(),
            opts=platform.child(self),
        )


def dashboard(
    region: str, endpoint: str, model: str, alarm_arns: list[str], cost_queries: list[dict] | None = None
) -> dict:
    """CloudWatch dashboard body: one row per question an on-call clinician-facing analyst asks."""
    sm = {"EndpointName": endpoint, "VariantName": VARIANT}

    def metric_widget(title: str, metrics: list[list], y: int, x: int, stat: str = "Sum") -> dict:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "stat": stat,
                "period": 300,
                "view": "timeSeries",
                "metrics": metrics,
            },
        }

    def sagemaker(metric: str, **extra: str) -> list:
        return ["AWS/SageMaker", metric, *[v for kv in sm.items() for v in kv], extra or {}]

    drift = {"Model": model, "Variant": VARIANT}
    flat = [v for kv in drift.items() for v in kv]
    return {
        "widgets": [
            metric_widget("Traffic (invocations)", [sagemaker("Invocations")], 0, 0),
            metric_widget(
                "Latency (ms, p50 / p99)",
                [
                    sagemaker("ModelLatency", stat="p50", label="p50"),
                    sagemaker("ModelLatency", stat="p99", label="p99"),
                ],
                0,
                12,
                "p99",
            ),
            metric_widget(
                "Errors (4XX / 5XX / invalid scores)",
                [
                    sagemaker("Invocation4XXErrors"),
                    sagemaker("Invocation5XXErrors"),
                    [SERVING_NAMESPACE, "InvalidScores", "EndpointName", endpoint, {}],
                ],
                6,
                0,
            ),
            metric_widget(
                "Drift (drifted features, score PSI)",
                [["clinops/drift", "DriftedFeatures", *flat, {}], ["clinops/drift", "ScorePSI", *flat, {}]],
                6,
                12,
                "Maximum",
            ),
            metric_widget(
                "Quality on adjudicated outcomes (AUC, Brier)",
                [["clinops/quality", "AUC", *flat, {}], ["clinops/quality", "Brier", *flat, {}]],
                12,
                0,
                "Average",
            ),
            {
                "type": "alarm",
                "x": 12,
                "y": 12,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": "Deployments and rollbacks (rollback, drift and quality alarms)",
                    "alarms": sorted(alarm_arns),
                },
            },
            *([cost_widget(region, cost_queries)] if cost_queries else []),
        ]
    }


def cost_widget(region: str, queries: list[dict]) -> dict:
    """Cost per 1,000 predictions per day: the same metric math the cost alarm judges (infra.slo)."""
    metrics: list[list] = []
    for q in queries:
        if "expression" in q:
            metrics.append([{"expression": q["expression"], "label": q["label"], "id": q["id"]}])
        else:
            m = q["metric"]
            flat = [v for kv in m["dimensions"].items() for v in kv]
            metrics.append(
                [m["namespace"], m["metric_name"], *flat, {"id": q["id"], "stat": m["stat"], "visible": False}]
            )
    return {
        "type": "metric",
        "x": 0,
        "y": 18,
        "width": 24,
        "height": 6,
        "properties": {
            "title": "Cost per 1,000 predictions (USD, daily)",
            "region": region,
            "period": queries[0]["metric"]["period"],
            "view": "timeSeries",
            "metrics": metrics,
        },
    }
