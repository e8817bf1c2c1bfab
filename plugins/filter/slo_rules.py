# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Prometheus recording rules and multi-window, multi-burn-rate alerts from SLOs given as data."""

from __future__ import annotations

import math
import re

from ansible.errors import AnsibleFilterError

# The Google SRE workbook's page-worthy pairs: a long window that proves the budget is burning,
# a short one that proves it still is; the burn rate spends that share of a 30-day budget.
BURN_ALERTS = (
    {"long": "1h", "short": "5m", "burn": 14.4, "for": "2m", "budget": "2 % of a 30-day error budget in one hour"},
    {"long": "6h", "short": "30m", "burn": 6.0, "for": "15m", "budget": "5 % of a 30-day error budget in six hours"},
)
WINDOWS = ("5m", "30m", "1h", "6h")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RUNBOOK = "https://github.com/aistack/fleet/blob/main/docs/slo.md"


def _fail(message):
    raise AnsibleFilterError(f"slo_rules: {message}")


def _bound(milliseconds):
    """The `le` label of the histogram bucket at this many milliseconds, as Prometheus clients write it."""
    return repr(float(milliseconds) / 1000)


def _checked(slo, index, seen):
    if not isinstance(slo, dict):
        _fail(f"SLO number {index + 1} is not a mapping: {slo!r}")
    unknown = sorted(set(slo) - {"name", "selector", "objective", "latency_threshold_ms", "description"})
    if unknown:
        _fail(
            f"SLO number {index + 1} has unknown keys {unknown} "
            "(name, selector, objective, latency_threshold_ms, description)"
        )
    name = slo.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        _fail(
            f"SLO number {index + 1}: name must be lower case letters, digits and _ "
            f"(a label value and a rule name), got {name!r}"
        )
    if name in seen:
        _fail(f"two SLOs are named {name!r}")
    seen.add(name)
    selector = slo.get("selector", "")
    if not isinstance(selector, str) or "{" in selector or "}" in selector:
        _fail(f'{name}: selector is label matchers without braces, such as job="app", got {selector!r}')
    try:
        objective = float(slo.get("objective"))
    except (TypeError, ValueError):
        _fail(
            f"{name}: objective is the share of good requests between 0 and 1 (0.995 for 99.5 %), "
            f"got {slo.get('objective')!r}"
        )
    if not 0 < objective < 1:
        _fail(f"{name}: objective must lie between 0 and 1, both excluded (0.995 for 99.5 %), got {objective:g}")
    threshold = slo.get("latency_threshold_ms")
    if threshold is not None:
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            _fail(f"{name}: latency_threshold_ms is a number of milliseconds, got {threshold!r}")
        if not 0 < threshold < math.inf:
            _fail(f"{name}: latency_threshold_ms must be above 0, got {threshold:g}")
    return name, selector.strip().strip(","), objective, threshold, slo.get("description")


def slo_rules(slos, requests_metric="http_requests_total", duration_metric="http_request_duration_seconds"):
    """Rule groups for a Prometheus rule file: {"groups": [...]}.

    Per SLO, the ratio of bad requests over 5m, 30m, 1h and 6h (slo:sli_error:ratio_rate<window>),
    and two alerts: the 1h/5m pair at 14.4 times the budget's burn rate and the 6h/30m pair at 6
    times. A bad request is a 5xx answer, or with latency_threshold_ms one slower than the
    threshold (which must be a bucket bound of the duration histogram).
    """
    if not isinstance(slos, list):
        _fail(f"expects a list of SLOs, got {type(slos).__name__}")
    seen, groups = set(), []
    for index, slo in enumerate(slos):
        name, selector, objective, threshold, description = _checked(slo, index, seen)
        base = f"{selector}," if selector else ""
        labels = {"slo": name}
        records = []
        for window in WINDOWS:
            if threshold is None:
                bad = f'sum(rate({requests_metric}{{{base}status=~"5.."}}[{window}]))'
                total = f"sum(rate({requests_metric}{{{selector}}}[{window}]))"
                expr = f"({bad} or vector(0)) / {total}"
            else:
                fast = f'sum(rate({duration_metric}_bucket{{{base}le="{_bound(threshold)}"}}[{window}]))'
                total = f"sum(rate({duration_metric}_count{{{selector}}}[{window}]))"
                expr = f"1 - ({fast} / {total})"
            records.append({"record": f"slo:sli_error:ratio_rate{window}", "expr": expr, "labels": dict(labels)})
        budget = 1 - objective
        what = (
            f"requests slower than {threshold:g} ms" if threshold is not None else "requests answered with a 5xx status"
        )
        alerts = []
        for pair in BURN_ALERTS:
            limit = round(pair["burn"] * budget, 12)
            alerts.append(
                {
                    "alert": "SLOErrorBudgetBurn",
                    "expr": (
                        f'slo:sli_error:ratio_rate{pair["long"]}{{slo="{name}"}} > {limit:g}'
                        f' and slo:sli_error:ratio_rate{pair["short"]}{{slo="{name}"}} > {limit:g}'
                    ),
                    "for": pair["for"],
                    "labels": {**labels, "severity": "page", "window": f"{pair['long']}/{pair['short']}"},
                    "annotations": {
                        "summary": f"SLO {name} burns its error budget {pair['burn']:g} times too fast",
                        "description": (
                            f"{description + ': ' if description else ''}{what} over the last {pair['long']} and "
                            f"{pair['short']} are above {limit * 100:.4g} % (objective {objective * 100:.4g} %); "
                            f"at this rate the service spends {pair['budget']}. "
                            f"Now {{{{ $value | humanizePercentage }}}} over {pair['long']}."
                        ),
                        "runbook_url": f"{RUNBOOK}#slo-error-budget-burn",
                    },
                }
            )
        groups.append({"name": f"slo_{name}", "rules": records + alerts})
    return {"groups": groups}


class FilterModule:
    def filters(self):
        return {"slo_rules": slo_rules}
