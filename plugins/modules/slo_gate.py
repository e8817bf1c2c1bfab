#!/usr/bin/python
# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: slo_gate
short_description: Judge a canary against its baseline and the SLOs, or the error budget, from request metrics
version_added: 0.1.0
description:
  - A gate, not an action. It measures, per group of targets, the requests, the 5xx error ratio
    and the p50, p95 and p99 latencies over a window. It then returns a verdict with the evidence.
    The playbook promotes, holds or rolls back on that verdict.
  - With O(mode=compare) the verdict is V(promote), V(hold) or V(rollback). O(canary) is judged
    on its own (at most O(max_error_ratio) errors, p95 at most O(max_p95_ms)) and, when
    O(baseline) is given, against the baseline. Its error ratio may be at most
    O(max_error_ratio_vs_baseline) times the baseline's, the baseline's ratio counted as at least
    O(baseline_error_ratio_floor). Its p95 may be at most O(max_latency_regression) above the
    baseline's, and always up to O(min_latency_regression_ms) milliseconds above it.
    A group with fewer than O(min_samples) requests gives V(hold). So does a target that could
    not be scraped, unless a rule already calls for V(rollback).
  - With O(mode=error_budget) it applies the error-budget policy. The share of the budget
    consumed over O(error_budget.window) is (errors / requests) / (1 - O(error_budget.slo_target)).
    It gives the state C(HEALTHY) (below 50 %), C(WARNING) (below 75 %), C(CRITICAL) (below 100 %)
    or C(EXHAUSTED). The verdict is V(block) when more than O(error_budget.max_consumed) is
    consumed, V(hold) when no request was counted, else V(allow).
  - The metrics come from the Prometheus HTTP query API when O(prometheus_url) is set. The
    queries use the PromQL functions C(increase) and C(histogram_quantile) over the window. Without Prometheus,
    the module scrapes every target's C(/metrics) URL at the start and at the end of O(window)
    seconds (and every O(interval) seconds between), and computes the counter and
    histogram-bucket increases itself. A counter that went down, or whose C(_created)
    timestamp changed, belongs to a restarted process, so its increase is its new value.
    The targets of a group are summed.
  - Percentiles are interpolated linearly inside the histogram bucket, like PromQL's
    C(histogram_quantile). A rank in the C(+Inf) bucket gives the highest finite bound.
  - Requests whose C(path) label is in O(ignore_paths) are left out; with O(methods), only
    those methods count. A request is an error when its C(status) label is C(5xx).
  - Uses only the Python standard library, so the host it runs on needs nothing installed.
  - The gate reads only. It reports C(changed=false) and runs in check mode too.
author:
  - aistack.fleet maintainers (@aistack)
extends_documentation_fragment:
  - aistack.fleet.tls_client
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The gate only reads metrics, so check mode measures too and returns the same verdict.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode) when in diff mode.
    support: none
options:
  mode:
    description:
      - V(compare) judges O(canary) (and compares it with O(baseline)).
      - V(error_budget) applies the error-budget policy described by O(error_budget).
    type: str
    choices: [compare, error_budget]
    default: compare
  canary:
    description:
      - The targets of the canary group. Required with O(mode=compare).
      - Without O(prometheus_url), each item is the C(http://) or C(https://) URL of a target's
        metrics. A URL without a path gets C(/metrics) added.
      - With O(prometheus_url), each item is a label matcher such as C(track="canary") or
        C(version="1.4.0"), or an instance such as C(app1:8000) (a URL gives its host:port).
        Instances are matched together on O(instance_label); all matchers must hold.
    type: list
    elements: str
  baseline:
    description:
      - The targets of the baseline group, given like O(canary). Optional.
      - Without a baseline only the absolute thresholds apply.
    type: list
    elements: str
  prometheus_url:
    description:
      - The base URL of Prometheus, for example C(http://prometheus:9090). It may carry a path
        prefix. The module calls C(/api/v1/query) under it.
      - When unset, the targets' C(/metrics) URLs are sampled directly.
    type: str
  selector:
    description:
      - Label matchers added to every Prometheus query, for example C(job="app").
    type: str
  instance_label:
    description:
      - The label that instances given in O(canary) and O(baseline) are matched on.
    type: str
    default: instance
  requests_metric:
    description:
      - The request counter, with labels C(status), C(path) and C(method).
    type: str
    default: http_requests_total
  duration_metric:
    description:
      - The base name of the request-duration histogram in seconds (its C(_bucket), C(_count)
        and C(_created) series are read).
    type: str
    default: http_request_duration_seconds
  ignore_paths:
    description:
      - Values of the C(path) label whose requests are left out, such as health checks and scrapes.
    type: list
    elements: str
    default: [/metrics, /health, /ready]
  methods:
    description:
      - Only count requests with these HTTP methods. All methods when empty.
    type: list
    elements: str
    default: []
  window:
    description:
      - How long to measure with O(mode=compare). Seconds, or a duration such as V(30s), V(5m) or V(1h).
      - With O(prometheus_url), the last O(window) before the task runs is queried.
      - Without it, the module scrapes, waits O(window), and scrapes again.
      - Also the sampling time of O(mode=error_budget) when it samples O(error_budget.targets) directly.
    type: raw
    default: 60s
  interval:
    description:
      - When sampling C(/metrics) directly, also scrape every O(interval) (seconds or a duration)
        between the start and the end of O(window). A restart between two scrapes is then
        seen even when the counter has grown past its old value.
      - By default only the start and the end are scraped.
    type: raw
  abort_early:
    description:
      - With O(mode=compare), O(interval) and direct sampling, judge the canary's errors after
        every scrape between the start and the end of O(window), and end the window with
        V(rollback) as soon as an error rule (O(max_error_ratio), O(max_error_ratio_vs_baseline))
        calls for it with at least O(min_samples) canary requests. The latency rules, V(promote)
        and V(hold) still wait for the end of the window (percentiles from a few dozen requests,
        or from a process that just started, are noise).
      - A bad canary then loses its traffic on the first evidence instead of at the end of its
        hold. RV(evidence.decided_after) says when the verdict came.
    type: bool
    default: false
  timeout:
    description:
      - Seconds one HTTP request (a scrape or a Prometheus query) may take.
    type: float
    default: 10
  min_samples:
    description:
      - The fewest requests a group must have served in the window to be judged. Fewer give V(hold).
    type: int
    default: 50
  max_error_ratio:
    description:
      - The highest error ratio (5xx / all requests) the canary may have, as a ratio. V(0.05) is 5 %.
    type: float
    default: 0.05
  max_error_ratio_vs_baseline:
    description:
      - How many times the baseline's error ratio the canary may have.
    type: float
    default: 2.0
  baseline_error_ratio_floor:
    description:
      - The least baseline error ratio used by O(max_error_ratio_vs_baseline). With the defaults,
        a baseline without errors lets the canary have up to 2 % errors. A single canary error
        then does not trigger a rollback.
      - V(0) compares with the baseline's ratio as it is. Any canary error then fails against
        an error-free baseline.
    type: float
    default: 0.01
  max_p95_ms:
    description:
      - The highest p95 latency in milliseconds the canary may have.
    type: float
    default: 500
  max_latency_regression:
    description:
      - How much slower than the baseline's p95 the canary's p95 may be, as a ratio. V(0.10) is 10 %.
    type: float
    default: 0.10
  min_latency_regression_ms:
    description:
      - The canary's p95 may always be this many milliseconds above the baseline's, whatever
        O(max_latency_regression) allows. Percentiles from histogram buckets are only as
        precise as the buckets, so fast services would otherwise roll back on noise.
    type: float
    default: 5
  error_budget:
    description:
      - The error-budget policy, for O(mode=error_budget).
    type: dict
    default: {}
    suboptions:
      slo_target:
        description:
          - The availability objective, as a ratio. V(0.999) is 99.9 % and leaves a 0.1 % error budget.
        type: float
        default: 0.999
      window:
        description:
          - The SLO window the budget is counted over, such as V(30d) (used with Prometheus and in the evidence).
        type: raw
        default: 30d
      max_consumed:
        description:
          - The share of the budget that may be consumed before changes are blocked. V(0.75) is 75 %.
        type: float
        default: 0.75
      requests:
        description:
          - The number of requests over the window, when known already. Give O(error_budget.errors) too.
          - With the counts given, no metrics are read.
        type: float
      errors:
        description:
          - The number of failed requests over the window, when known already.
        type: float
      targets:
        description:
          - The targets to count, given like O(canary).
          - With O(prometheus_url) they narrow the queries, which O(selector) alone may do too.
          - Without it, these C(/metrics) URLs are sampled over O(window). This measures
            how fast the budget burns now, not what the SLO window consumed.
        type: list
        elements: str
      requests_query:
        description:
          - PromQL for the request count, instead of the query built from O(requests_metric),
            for example a recording rule.
        type: str
      errors_query:
        description:
          - PromQL for the error count, instead of the query built from O(requests_metric).
        type: str
  fail_on:
    description:
      - Verdicts that make the task fail. By default the task never fails on a verdict and the playbook decides.
    type: list
    elements: str
    choices: [promote, hold, rollback, allow, block]
    default: []
  headers:
    description:
      - Request headers sent to Prometheus and to the C(/metrics) URLs.
      - Their values are never shown in the output (headers often carry C(Authorization)).
    type: dict
    default: {}
  bearer_token:
    description:
      - A token sent in the C(Authorization) header, as C(Bearer <token>), to Prometheus and to the C(/metrics) URLs.
    type: str
notes:
  - Prometheus' C(increase) extrapolates to the window's edges, so counts from Prometheus
    may not be whole numbers.
  - Targets of one group should use the same histogram buckets; buckets are summed by bound.
  - Redirects are not followed; proxy settings of the environment are not used.
seealso:
  - module: aistack.fleet.health_gate
"""

EXAMPLES = r"""
- name: Judge the canary against the stable hosts over 5 minutes, from Prometheus
  aistack.fleet.slo_gate:
    prometheus_url: http://prometheus.example.net:9090
    selector: job="app"
    canary: ['version="{{ app_version }}"']
    baseline: ['version!="{{ app_version }}"']
    window: 5m
  register: canary_gate
  delegate_to: localhost
  run_once: true

- name: Roll back when the gate says so
  ansible.builtin.include_tasks: rollback.yml
  when: canary_gate.verdict == 'rollback'

- name: Sample the canary's own /metrics for 2 minutes (no Prometheus) and fail unless it may be promoted
  aistack.fleet.slo_gate:
    canary:
      - http://10.0.0.21:8000/metrics
    baseline:
      - http://10.0.0.11:8000/metrics
      - http://10.0.0.12:8000/metrics
    window: 2m
    interval: 15s
    methods: [GET, POST]
    fail_on: [hold, rollback]
  delegate_to: "{{ groups['lb'][0] }}"
  run_once: true

- name: Refuse to deploy when three quarters of the 30-day error budget are gone
  aistack.fleet.slo_gate:
    mode: error_budget
    prometheus_url: https://prometheus.example.net
    selector: job="app"
    ca_path: /etc/aistack/pki/ca.pem
    error_budget:
      slo_target: 0.999
      window: 30d
      max_consumed: 0.75
    fail_on: [block]
  delegate_to: localhost
  run_once: true

- name: The same policy with counts taken from elsewhere
  aistack.fleet.slo_gate:
    mode: error_budget
    error_budget:
      requests: 12500000
      errors: 9100
"""

RETURN = r"""
verdict:
  description:
    - V(promote), V(hold) or V(rollback) with O(mode=compare).
    - V(allow), V(block) or V(hold) with O(mode=error_budget).
  returned: always
  type: str
  sample: rollback
reasons:
  description: Sentences, with the numbers, that led to the verdict (for V(promote), every check that passed).
  returned: always
  type: list
  elements: str
  sample:
    - canary error ratio 48.00% (120 of 250 requests) is above the maximum of 5.00%
msg:
  description: The verdict and its reasons on one line.
  returned: always
  type: str
  sample: "rollback: canary error ratio 48.00% (120 of 250 requests) is above the maximum of 5.00%"
evidence:
  description: What the verdict was based on.
  returned: always
  type: dict
  contains:
    mode:
      description: The O(mode).
      type: str
      sample: compare
    source:
      description: Where the numbers came from, V(prometheus), V(metrics) (direct sampling) or V(given).
      type: str
      sample: metrics
    window:
      description: The window measured, as given.
      type: str
      sample: 5m
    window_seconds:
      description: The window in seconds.
      type: float
      sample: 300.0
    decided_after:
      description:
        - Seconds from the start of the window to the verdict. Below RV(evidence.window_seconds)
          when O(abort_early) ended the window at the first evidence.
      returned: when O(mode=compare)
      type: float
      sample: 15.0
    thresholds:
      description: The thresholds applied (O(mode=compare)).
      returned: when O(mode=compare)
      type: dict
      sample:
        min_samples: 50
        max_error_ratio: 0.05
        max_error_ratio_vs_baseline: 2.0
        baseline_error_ratio_floor: 0.01
        max_p95_ms: 500.0
        max_latency_regression: 0.1
        min_latency_regression_ms: 5.0
    series:
      description:
        - What the window held at every scrape after the first, oldest first, for a chart of
          the stage (the C(aistack.fleet.deploy_report) callback draws it). C(seconds) since the
          window began, and per group C(requests), C(errors), C(error_ratio) and C(p95_ms),
          counted from the start of the window (null where the group has no request or
          observation yet).
      returned: when O(mode=compare) and sampling directly (no O(prometheus_url))
      type: list
      elements: dict
      sample:
        - seconds: 2.0
          canary: {requests: 31, errors: 0, error_ratio: 0.0, p95_ms: 9.1}
          baseline: {requests: 590, errors: 0, error_ratio: 0.0, p95_ms: 8.7}
        - seconds: 4.0
          canary: {requests: 64, errors: 5, error_ratio: 0.078125, p95_ms: 9.4}
          baseline: {requests: 1180, errors: 0, error_ratio: 0.0, p95_ms: 8.8}
    groups:
      description:
        - Per group (C(canary), C(baseline)) C(requests), C(errors), C(error_ratio) (null without
          requests), C(samples) (latency observations), C(p50_ms), C(p95_ms), C(p99_ms) (null
          without observations) and C(targets).
        - When sampling directly, each target has C(url), C(requests), C(errors), C(resets)
          (restarts seen), C(scrapes), C(failed_scrapes) and C(error).
        - With Prometheus, the group has the C(queries) it ran.
      returned: when O(mode=compare)
      type: dict
      sample:
        canary:
          requests: 250
          errors: 120
          error_ratio: 0.48
          samples: 250
          p50_ms: 2.6
          p95_ms: 4.8
          p99_ms: 4.96
    queries:
      description: The PromQL run for the error budget (with Prometheus).
      returned: when O(mode=error_budget) with O(prometheus_url)
      type: dict
      sample:
        requests: sum(increase(http_requests_total{job="app"}[30d]))
    targets:
      description: Each sampled target, as in O(mode=compare) (direct sampling).
      returned: when O(mode=error_budget) samples O(error_budget.targets)
      type: list
      elements: dict
    incomplete:
      description: Which targets could not be scraped twice (direct sampling); the verdict is then at best V(hold).
      returned: when O(mode=error_budget) samples targets and some could not be scraped
      type: str
    budget:
      description:
        - The error-budget figures. These are C(requests), C(errors), C(error_ratio), C(availability),
          C(slo_target), C(error_budget), C(consumed) (a ratio), C(consumed_pct), C(remaining_pct),
          C(budget_seconds), C(consumed_seconds), C(remaining_seconds), C(state), C(policy) and
          C(max_consumed).
      returned: when O(mode=error_budget)
      type: dict
      sample:
        requests: 1000000
        errors: 800
        consumed_pct: 80.0
        state: CRITICAL
        policy: freeze non-critical deployments
"""

import math  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aistack.fleet.plugins.module_utils.http_probe import (  # noqa: E402
    TLS_ARGUMENT_SPEC,
    ProbeConfigError,
    tls_context,
)
from ansible_collections.aistack.fleet.plugins.module_utils.prometheus import (  # noqa: E402
    Prometheus,
    PrometheusError,
    Selector,
    group_numbers,
    group_queries,
)
from ansible_collections.aistack.fleet.plugins.module_utils.slo import (  # noqa: E402
    BudgetPolicy,
    MetricNames,
    Scraper,
    SloConfigError,
    Thresholds,
    group_stats,
    judge,
    merge_reports,
    metrics_url,
    parse_duration,
)

VERDICTS = ["promote", "hold", "rollback", "allow", "block"]
LATENCY_LIMITS = ("max_p95_ms", "max_latency_regression", "min_latency_regression_ms")
# A group's numbers at each moment of evidence.series.
SERIES_KEYS = ("requests", "errors", "error_ratio", "p95_ms")

ARGUMENT_SPEC = {
    "mode": {"type": "str", "choices": ["compare", "error_budget"], "default": "compare"},
    "canary": {"type": "list", "elements": "str"},
    "baseline": {"type": "list", "elements": "str"},
    "prometheus_url": {"type": "str"},
    "selector": {"type": "str"},
    "instance_label": {"type": "str", "default": "instance"},
    "requests_metric": {"type": "str", "default": "http_requests_total"},
    "duration_metric": {"type": "str", "default": "http_request_duration_seconds"},
    "ignore_paths": {"type": "list", "elements": "str", "default": ["/metrics", "/health", "/ready"]},
    "methods": {"type": "list", "elements": "str", "default": []},
    "window": {"type": "raw", "default": "60s"},
    "interval": {"type": "raw"},
    "abort_early": {"type": "bool", "default": False},
    "timeout": {"type": "float", "default": 10},
    "min_samples": {"type": "int", "default": 50},
    "max_error_ratio": {"type": "float", "default": 0.05},
    "max_error_ratio_vs_baseline": {"type": "float", "default": 2.0},
    "baseline_error_ratio_floor": {"type": "float", "default": 0.01},
    "max_p95_ms": {"type": "float", "default": 500},
    "max_latency_regression": {"type": "float", "default": 0.10},
    "min_latency_regression_ms": {"type": "float", "default": 5},
    "error_budget": {
        "type": "dict",
        "default": {},
        "options": {
            "slo_target": {"type": "float", "default": 0.999},
            "window": {"type": "raw", "default": "30d"},
            "max_consumed": {"type": "float", "default": 0.75},
            "requests": {"type": "float"},
            "errors": {"type": "float"},
            "targets": {"type": "list", "elements": "str"},
            "requests_query": {"type": "str"},
            "errors_query": {"type": "str"},
        },
    },
    "fail_on": {"type": "list", "elements": "str", "choices": VERDICTS, "default": []},
    "headers": {"type": "dict", "default": {}, "no_log": True},
    "bearer_token": {"type": "str", "no_log": True},
    **TLS_ARGUMENT_SPEC,
}


class Plan:
    """The checked settings of one run."""

    def __init__(self, params):
        self.params = params
        self.mode = params["mode"]
        self.window = parse_duration(params["window"], "window")
        self.window_label = _label(params["window"])
        if self.window <= 0:
            raise SloConfigError(f"window must be above 0, got {params['window']!r}")
        self.interval = None
        if params["interval"] is not None:
            self.interval = parse_duration(params["interval"], "interval")
            if self.interval <= 0:
                raise SloConfigError(f"interval must be above 0, got {params['interval']!r}")
        if params["timeout"] <= 0:
            raise SloConfigError(f"timeout must be above 0, got {params['timeout']:g}")
        self.names = MetricNames(
            params["requests_metric"],
            params["duration_metric"],
            ignore_paths=params["ignore_paths"],
            methods=params["methods"],
        )
        self.headers = dict(params["headers"])
        if params["bearer_token"]:
            self.headers["Authorization"] = f"Bearer {params['bearer_token']}"
        if params["abort_early"] and (self.mode != "compare" or params["prometheus_url"] or self.interval is None):
            raise SloConfigError(
                "abort_early judges the canary at every scrape: it needs mode=compare, an interval, "
                "and the targets' /metrics sampled directly (no prometheus_url)"
            )
        if self.mode == "compare":
            self._check_compare()
        else:
            self._check_budget()

    def _check_compare(self):
        params = self.params
        self.thresholds = Thresholds(**{field: params[field] for field in Thresholds.FIELDS})
        self.thresholds.check()
        if not params["canary"]:
            raise SloConfigError("canary is empty: give at least one target (a /metrics URL, an instance or a matcher)")
        self.groups = {"canary": params["canary"]}
        if params["baseline"] is not None:
            if not params["baseline"]:
                raise SloConfigError("baseline is empty: give at least one target, or leave baseline out")
            self.groups["baseline"] = params["baseline"]
        if not params["prometheus_url"]:
            self.groups = {name: [metrics_url(url) for url in urls] for name, urls in self.groups.items()}

    def _check_budget(self):
        budget = self.params["error_budget"]
        target = budget["slo_target"]
        if not 0 < target < 1:
            raise SloConfigError(
                f"error_budget.slo_target is a ratio between 0 and 1 (0.999 means 99.9 %), got {target:g}"
            )
        self.budget_window = parse_duration(budget["window"], "error_budget.window")
        if self.budget_window <= 0:
            raise SloConfigError(f"error_budget.window must be above 0, got {budget['window']!r}")
        if not 0 <= budget["max_consumed"] <= 1:
            raise SloConfigError(
                f"error_budget.max_consumed is a share of the budget between 0 and 1 (0.75 means 75 %), "
                f"got {budget['max_consumed']:g}"
            )
        given = [budget["requests"] is not None, budget["errors"] is not None]
        if any(given) and not all(given):
            raise SloConfigError("error_budget.requests and error_budget.errors go together: give both or neither")
        if all(given):
            if budget["requests"] < 0 or budget["errors"] < 0:
                raise SloConfigError("error_budget.requests and error_budget.errors must not be negative")
            if budget["errors"] > budget["requests"]:
                raise SloConfigError(
                    f"error_budget.errors ({budget['errors']:g}) cannot be more than "
                    f"error_budget.requests ({budget['requests']:g})"
                )
            self.budget_source = "given"
        elif self.params["prometheus_url"]:
            self.budget_source = "prometheus"
        elif budget["targets"]:
            self.budget_source = "metrics"
            self.budget_targets = [metrics_url(url) for url in budget["targets"]]
        else:
            raise SloConfigError(
                "mode=error_budget needs the counts: set prometheus_url, or error_budget.requests and "
                "error_budget.errors, or error_budget.targets to sample"
            )


def _label(value):
    return f"{value:g}s" if isinstance(value, (int, float)) else str(value).strip()


def compare(plan, context):
    """Measure every group and judge the canary."""
    params = plan.params
    groups, incomplete, series = {}, {}, []
    decided_after = plan.window
    if params["prometheus_url"]:
        source = "prometheus"
        prometheus = plan.prometheus
        for name, items in plan.groups.items():
            selector = Selector(
                items, params["selector"], params["instance_label"], params["ignore_paths"], params["methods"]
            )
            queries = group_queries(selector, plan.window, params["requests_metric"], params["duration_metric"])
            numbers = group_numbers(prometheus, queries)
            groups[name] = group_stats(numbers["requests"], numbers["errors"], numbers["samples"], numbers)
            groups[name]["targets"] = list(items)
            groups[name]["queries"] = queries
    else:
        source = "metrics"
        urls = [url for items in plan.groups.values() for url in items]
        scraper = Scraper(plan.names, params["timeout"], context, plan.headers)

        def measured(reports):
            groups, incomplete = {}, {}
            for name, items in plan.groups.items():
                groups[name], problem = merge_reports(items, reports)
                if problem:
                    incomplete[name] = problem
            return groups, incomplete

        # Early, only the error rules may end the window: percentiles from the first few dozen
        # requests (and a process that just started) are noise, so latency waits for the end.
        errors_only = Thresholds(**{**plan.thresholds.as_dict(), **dict.fromkeys(LATENCY_LIMITS, math.inf)})

        def broken(reports):
            groups, incomplete = measured(reports)
            return judge(groups["canary"], groups.get("baseline"), errors_only, "", incomplete)[0] == "rollback"

        def observe(seconds, reports):
            # What the window held so far, for a chart of the stage (the deploy report draws it).
            point = {"seconds": seconds}
            for name, stats in measured(reports)[0].items():
                point[name] = {key: stats[key] for key in SERIES_KEYS}
            series.append(point)

        reports = scraper.sample(urls, plan.window, plan.interval, broken if params["abort_early"] else None, observe)
        decided_after = scraper.elapsed
        groups, incomplete = measured(reports)
    label = plan.window_label if decided_after == plan.window else f"{decided_after:g}s (of {plan.window_label})"
    verdict, reasons = judge(groups["canary"], groups.get("baseline"), plan.thresholds, label, incomplete)
    evidence = {
        "mode": "compare",
        "source": source,
        "window": plan.window_label,
        "window_seconds": plan.window,
        "decided_after": decided_after,
        "thresholds": plan.thresholds.as_dict(),
        "groups": groups,
    }
    if source == "metrics":
        evidence["series"] = series
    return verdict, reasons, evidence


def budget(plan, context):
    """Count requests and errors over the SLO window (or take them as given) and apply the policy."""
    params, settings = plan.params, plan.params["error_budget"]
    window, label = plan.budget_window, _label(settings["window"])
    extra = {}
    if plan.budget_source == "given":
        requests, errors = settings["requests"], settings["errors"]
    elif plan.budget_source == "prometheus":
        prometheus = plan.prometheus
        selector = Selector(
            settings["targets"], params["selector"], params["instance_label"], params["ignore_paths"], params["methods"]
        )
        queries = group_queries(selector, window, params["requests_metric"], params["duration_metric"])
        queries = {
            "requests": settings["requests_query"] or queries["requests"],
            "errors": settings["errors_query"] or queries["errors"],
        }
        requests, errors = prometheus.number(queries["requests"]), prometheus.number(queries["errors"])
        extra["queries"] = queries
    else:
        window, label = plan.window, plan.window_label
        scraper = Scraper(plan.names, params["timeout"], context, plan.headers)
        reports = scraper.sample(plan.budget_targets, plan.window, plan.interval)
        stats, problem = merge_reports(plan.budget_targets, reports)
        requests, errors = stats["requests"], stats["errors"]
        extra["targets"] = stats["targets"]
        if problem:
            extra["incomplete"] = problem
    policy = BudgetPolicy(settings["slo_target"], window, settings["max_consumed"], label)
    verdict, reasons, figures = policy.judge(requests, errors)
    if extra.get("incomplete") and verdict != "block":
        verdict = "hold"
        reasons.append(f"the sample is incomplete: {extra['incomplete']}")
    evidence = {
        "mode": "error_budget",
        "source": plan.budget_source,
        "window": label,
        "window_seconds": window,
        "budget": figures,
        **extra,
    }
    return verdict, reasons, evidence


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_by={"client_key": "client_cert"},
    )
    params = module.params
    try:
        plan = Plan(params)
        context = tls_context(**{name: params[name] for name in TLS_ARGUMENT_SPEC})
        if params["prometheus_url"]:
            plan.prometheus = Prometheus(params["prometheus_url"], params["timeout"], context, plan.headers)
    except (SloConfigError, ProbeConfigError) as exc:
        module.fail_json(msg=str(exc))
    try:
        verdict, reasons, evidence = (compare if plan.mode == "compare" else budget)(plan, context)
    except PrometheusError as exc:
        module.fail_json(msg=str(exc))
    result = {
        "changed": False,
        "verdict": verdict,
        "reasons": reasons,
        "msg": f"{verdict}: " + "; ".join(reasons),
        "evidence": evidence,
    }
    if verdict in params["fail_on"]:
        result["msg"] = f"the verdict is {verdict}, which fail_on turns into a failure: " + "; ".join(reasons)
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
