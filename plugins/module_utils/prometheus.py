# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small client of Prometheus' HTTP query API, and the PromQL the SLO gate asks it.

Only the Python standard library is used (through slo.http_get).
"""

from __future__ import annotations

import json
import math
import re
from urllib.parse import urlencode, urlsplit

from ansible_collections.aistack.fleet.plugins.module_utils.slo import (
    QUANTILES,
    HttpError,
    SloConfigError,
    format_duration,
    http_get,
)

_MATCHER = re.compile(r'^\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=~|!~|!=|=)\s*"')


class PrometheusError(Exception):
    """Prometheus could not be asked or refused the query; the message says which and why."""


def promql_string(value):
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _alternation(values):
    return promql_string("|".join(re.escape(value) for value in values))


class Prometheus:
    """Instant queries against one Prometheus server (its URL may carry a path prefix)."""

    def __init__(self, url, timeout=10.0, context=None, headers=None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SloConfigError(f"prometheus_url {url!r} is not an http:// or https:// URL with a host")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.context = context
        self.headers = dict(headers or {})

    def query(self, promql):
        """The result vector of an instant query: a list of (labels, value); NaN stays NaN."""
        url = f"{self.url}/api/v1/query?{urlencode({'query': promql})}"
        try:
            status, body = http_get(url, self.timeout, self.context, {"Accept": "application/json", **self.headers})
        except HttpError as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {exc}") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise PrometheusError(
                f"Prometheus at {self.url} answered HTTP {status} with a body that is not JSON "
                f"(is prometheus_url the Prometheus server?)"
            ) from None
        if not isinstance(document, dict) or document.get("status") != "success" or status != 200:
            error = document.get("error") if isinstance(document, dict) else None
            kind = document.get("errorType") if isinstance(document, dict) else None
            detail = f"{kind}: {error}" if kind and error else (error or "no error message")
            raise PrometheusError(f"Prometheus at {self.url} refused the query {promql} (HTTP {status}): {detail}")
        data = document.get("data") or {}
        if data.get("resultType") == "scalar":
            return [({}, _value(data.get("result"), promql))]
        if data.get("resultType") != "vector":
            raise PrometheusError(
                f"Prometheus at {self.url} answered the query {promql} with a {data.get('resultType')!r} result, "
                f"expected an instant vector"
            )
        return [(item.get("metric") or {}, _value(item.get("value"), promql)) for item in data.get("result") or []]

    def number(self, promql):
        """The sum of an instant query's values, None when the result is empty or NaN."""
        values = [value for _labels, value in self.query(promql) if not math.isnan(value)]
        return sum(values) if values else None


def _value(pair, promql):
    try:
        return float(pair[1])
    except (TypeError, ValueError, IndexError):
        raise PrometheusError(f"Prometheus answered the query {promql} with a malformed value {pair!r}") from None


class Selector:
    """The label matchers of one group of targets.

    Each item is a label matcher (``track="canary"``, ``version=~"1\\.4\\..*"``), an instance
    (``app1:8000``) or a URL whose host:port is taken as the instance. Instances are matched
    together on `instance_label`; every matcher, and `base` (e.g. ``job="app"``), must hold.
    """

    def __init__(self, items, base=None, instance_label="instance", ignore_paths=(), methods=()):
        matchers, instances = [], []
        if base and base.strip().strip("{}").strip():
            matchers.append(base.strip().strip("{}").strip())
        for item in items or ():
            text = item.strip()
            if text.startswith(("http://", "https://")):
                instances.append(urlsplit(text).netloc)
            elif _MATCHER.match(text):
                matchers.append(text)
            elif text:
                instances.append(text)
        if instances:
            matchers.append(f"{instance_label}=~{_alternation(list(dict.fromkeys(instances)))}")
        if ignore_paths:
            matchers.append(f"path!~{_alternation(ignore_paths)}")
        if methods:
            matchers.append(f"method=~{_alternation([method.upper() for method in methods])}")
        self.matchers = matchers

    def render(self, *extra):
        return "{" + ", ".join(self.matchers + list(extra)) + "}"


def group_queries(selector, window_seconds, requests_metric, duration_metric):
    """The PromQL of one group over the window: requests, errors, samples and p50/p95/p99."""
    window = format_duration(window_seconds)
    everything = selector.render()
    errors = selector.render('status=~"5.."')
    queries = {
        "requests": f"sum(increase({requests_metric}{everything}[{window}]))",
        "errors": f"sum(increase({requests_metric}{errors}[{window}]))",
        "samples": f"sum(increase({duration_metric}_count{everything}[{window}]))",
    }
    for field, quantile in QUANTILES:
        queries[field] = (
            f"histogram_quantile({quantile:g}, sum by (le) (increase({duration_metric}_bucket{everything}[{window}])))"
        )
    return queries


def group_numbers(prometheus, queries):
    """Run a group's queries: {"requests", "errors", "samples", "p50_ms", "p95_ms", "p99_ms"}."""
    numbers = {}
    for field, promql in queries.items():
        value = prometheus.number(promql)
        if field.endswith("_ms"):
            value = None if value is None or math.isinf(value) else value * 1000
        numbers[field] = value
    return numbers
