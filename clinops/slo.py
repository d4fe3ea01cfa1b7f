"""Error-budget arithmetic shared by the alarms (infra.slo), the config checks and the scorecard.

Multi-window, multi-burn-rate alerting after the Google SRE Workbook, chapter 5 "Alerting on SLOs", table 5-8
(recommended parameters for a 30-day SLO window):

    budget consumed   long window   short window   burn rate   notification
    2%                1 hour        5 minutes      14.4        page
    5%                6 hours       30 minutes     6           page
    10%               3 days        6 hours        1           ticket

A tier fires when both windows burn faster than its rate: the long window proves the budget is really being
spent, the short one that it is *still* being spent (so the alert resets soon after a fix). The burn rate is
the share of the budget a window may consume scaled to the SLO window: rate = consumed x window / long window
(0.02 x 720 h / 1 h = 14.4). Stacks with a shorter SLO window keep the workbook's budget shares, so their rates
scale down with it. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

HOUR = 3600
DAY = 86400
# CloudWatch: period x evaluation periods may not exceed 7 days (PutMetricAlarm), so no alarm sees more of the
# budget window than this; see `exhausted_burn_rate`.
MAX_ALARM_RANGE_SECONDS = 7 * DAY
# SageMaker publishes endpoint metrics every minute; CloudWatch sees them up to ~2 periods later.
METRIC_DELAY_SECONDS = 120


@dataclass(frozen=True)
class BurnTier:
    name: str
    budget_share: float  # of the whole window's budget, consumed within the long window
    long_seconds: int
    short_seconds: int
    notify: str  # "page" or "ticket"

    def burn_rate(self, window_days: int) -> float:
        return round(self.budget_share * window_days * DAY / self.long_seconds, 6)

    @property
    def windows(self) -> tuple[int, int]:
        return (self.long_seconds, self.short_seconds)


WORKBOOK_TIERS = (
    BurnTier("fast", 0.02, HOUR, 5 * 60, "page"),
    BurnTier("medium", 0.05, 6 * HOUR, 30 * 60, "page"),
    BurnTier("slow", 0.10, 3 * DAY, 6 * HOUR, "ticket"),
)


def burn_rate(bad: float, total: float, error_budget: float) -> float:
    """How many times faster than sustainable the budget burns: observed bad fraction / allowed fraction."""
    if total <= 0:
        return 0.0
    return (bad / total) / error_budget


def budget_remaining(bad: float, total: float, error_budget: float) -> float:
    """Share of the window's budget still unspent (negative once overspent)."""
    return 1.0 - burn_rate(bad, total, error_budget)


def tier_fires(
    tier: BurnTier, window_days: int, long: tuple[float, float], short: tuple[float, float], budget: float
) -> bool:
    """Both windows (bad, total) at or above the tier's rate: what the composite alarm computes."""
    rate = tier.burn_rate(window_days)
    return burn_rate(*long, budget) >= rate and burn_rate(*short, budget) >= rate


def exhausted_burn_rate(window_days: int, look_back_seconds: int = MAX_ALARM_RANGE_SECONDS) -> float:
    """The burn rate over the longest window an alarm can see at which the whole budget is certainly gone: the
    look-back alone spent it (30-day window, 7-day look-back: 30/7 = 4.29). A lower bound on exhaustion -
    it never fires on a budget that is still there, and `clinops scorecard` reports the exact remainder."""
    return round(window_days * DAY / min(look_back_seconds, window_days * DAY), 6)


def detection_seconds(tier: BurnTier, window_days: int, bad_fraction: float, error_budget: float) -> float | None:
    """Time from the start of a sustained failure with this bad fraction until the tier fires, or None when the
    failure is too small to ever fire it. Each window's share of bad traffic grows linearly until the window is
    full, so the long window needs rate x budget / bad_fraction of its length (and at least one short window's
    worth of data); CloudWatch adds its publishing delay."""
    rate = tier.burn_rate(window_days)
    fills = [window_fill_seconds(seconds, 1, rate, error_budget, bad_fraction) for seconds in tier.windows]
    if None in fills:
        return None
    return max(f for f in fills if f is not None) + METRIC_DELAY_SECONDS


def window_fill_seconds(
    period: float, datapoints: int, rate: float, error_budget: float, bad_fraction: float = 1.0
) -> float | None:
    """Seconds of a sustained failure until a window alarm (metric math burn rate over `period`, `datapoints`
    breaching periods to alarm) crosses `rate`, without CloudWatch's delay; None when it never does.

    CloudWatch's default sliding evaluation window moves every minute, so the newest datapoint is the last
    `period` seconds: its burn rate reaches `rate` once rate x budget / bad_fraction of it is bad. Each further
    breaching datapoint it needs is one more whole period."""
    needed = rate * error_budget
    if bad_fraction < needed or bad_fraction <= 0:
        return None
    return (datapoints - 1) * period + period * needed / bad_fraction
