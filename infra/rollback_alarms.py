"""The rollback alarms SageMaker watches during a blue/green deployment (and that page people afterwards).

Three signals, each able to stop a bad model on its own:
- error rate: 5XX / invocations, by metric math, with a minimum-invocations guard — at low traffic the rate
  is meaningless, so a handful of errors trips it instead (low traffic neither trips nor hides a failure);
- latency: ModelLatency p99 against the SLO (SageMaker reports microseconds);
- model output: the share of invalid or out-of-range scores, counted by the container and extracted from its
  structured log lines by metric filters (the container runs network-isolated: it cannot call CloudWatch).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from clinops.models import ReleasePolicy
from infra.base import Platform

SERVING_NAMESPACE = "clinops/serving"
ERRORS_WHEN_QUIET = 3  # below min invocations, this many 5XX in a period still trips the alarm


def metric_query(qid: str, namespace: str, metric: str, dims: dict[str, str], period: int, stat: str) -> dict:
    """One input of a metric-math alarm (not returned: the expression is what the alarm judges)."""
    return {
        "id": qid,
        "return_data": False,
        "metric": {"namespace": namespace, "metric_name": metric, "dimensions": dims, "period": period, "stat": stat},
    }


class RollbackAlarms(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        platform: Platform,
        endpoint: str,
        variant: str,
        release: ReleasePolicy,
        log_group: aws.cloudwatch.LogGroup,
        topic_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("clinops:serving:RollbackAlarms", name, None, opts)
        self._platform, self._release, self._topic = platform, release, topic_arn
        dims = {"EndpointName": endpoint, "VariantName": variant}
        period = release.alarm_period_seconds

        def sagemaker_metric(qid: str, metric: str, stat: str = "Sum") -> dict:
            return metric_query(qid, "AWS/SageMaker", metric, dims, period, stat)

        guard = release.min_invocations
        error_rate = self._alarm(
            f"{endpoint}-5xx-rate",
            f"5XX share of invocations above {release.max_error_rate_percent}%",
            threshold=release.max_error_rate_percent,
            metric_queries=[
                sagemaker_metric("errors", "Invocation5XXErrors"),
                sagemaker_metric("invocations", "Invocations"),
                {
                    "id": "rate",
                    "return_data": True,
                    "label": "5XX rate (%) with low-traffic guard",
                    "expression": f"IF(invocations >= {guard}, 100 * errors / invocations, "
                    f"IF(errors >= {ERRORS_WHEN_QUIET}, 100, 0))",
                },
            ],
        )
        latency = self._alarm(
            f"{endpoint}-latency-p99",
            f"ModelLatency p99 above the {release.latency_p99_ms} ms SLO",
            threshold=release.latency_p99_ms * 1000,
            metric_queries=[{**sagemaker_metric("latency", "ModelLatency", "p99"), "return_data": True}],
        )

        # All traffic feeds the alarms (the canary exists to give them datapoints mid-deployment); synthetic rows
        # are also counted on their own, so dashboards and capacity planning can tell patients from the canary.
        every, synthetic = '{ $.event = "invocation" }', '{ ($.event = "invocation") && ($.synthetic IS TRUE) }'
        counters = {
            "Scored": ("$.rows", every),
            "InvalidScores": ("$.invalid_scores", every),
            "SyntheticScored": ("$.rows", synthetic),
        }
        for metric, (value, pattern) in counters.items():
            aws.cloudwatch.LogMetricFilter(
                f"{endpoint}-{metric.lower()}",
                log_group_name=log_group.name,
                pattern=pattern,
                metric_transformation={
                    "name": metric,
                    "namespace": SERVING_NAMESPACE,
                    "value": value,
                    "dimensions": {"EndpointName": "$.endpoint"},
                },
                opts=platform.child(self),
            )

        def own_metric(qid: str, metric: str) -> dict:
            return metric_query(qid, SERVING_NAMESPACE, metric, {"EndpointName": endpoint}, period, "Sum")

        invalid = self._alarm(
            f"{endpoint}-invalid-scores",
            f"share of invalid or out-of-range scores above {release.max_invalid_score_percent}%",
            threshold=release.max_invalid_score_percent,
            metric_queries=[
                own_metric("invalid", "InvalidScores"),
                own_metric("scored", "Scored"),
                {
                    "id": "share",
                    "return_data": True,
                    "label": "invalid score share (%)",
                    "expression": "IF(scored > 0, 100 * invalid / scored, 0)",
                },
            ],
        )
        self.alarms = [error_rate, latency, invalid]
        self.register_outputs({"alarmNames": [a.name for a in self.alarms]})

    def _alarm(
        self, name: str, description: str, threshold: float, metric_queries: list[dict]
    ) -> aws.cloudwatch.MetricAlarm:
        release, platform = self._release, self._platform
        return aws.cloudwatch.MetricAlarm(
            name,
            name=name,
            alarm_description=f"{description}. Rolls back a blue/green deployment; see RUNBOOK.md.",
            comparison_operator="GreaterThanThreshold",
            threshold=threshold,
            evaluation_periods=release.alarm_evaluation_periods,
            datapoints_to_alarm=release.alarm_datapoints,
            metric_queries=metric_queries,
            treat_missing_data="notBreaching",
            alarm_actions=[self._topic],
            ok_actions=[self._topic],
            # A silent metric must reach a person too (AWS Config cloudwatch-alarm-action-check, HIPAA pack).
            insufficient_data_actions=[self._topic],
            tags=platform.tags(),
            opts=platform.child(self),
        )
