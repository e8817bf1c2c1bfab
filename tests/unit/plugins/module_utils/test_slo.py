"""The SLO maths, the text format, direct sampling and the Prometheus client of slo_gate."""

import json
import math
import socket
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from ansible_collections.aistack.fleet.plugins.module_utils.prometheus import (
    Prometheus,
    PrometheusError,
    Selector,
    group_numbers,
    group_queries,
    promql_string,
)
from ansible_collections.aistack.fleet.plugins.module_utils.slo import (
    BudgetPolicy,
    MetricNames,
    MetricsFormatError,
    Scraper,
    SloConfigError,
    Thresholds,
    Totals,
    budget_state,
    delta,
    format_duration,
    group_stats,
    histogram_quantile,
    judge,
    metrics_url,
    parse_duration,
    parse_metrics,
    snapshot,
)
from tests.unit.conftest import Server

INF = math.inf
NAMES = MetricNames(ignore_paths=["/metrics", "/health", "/ready"])
DEFAULTS = {
    "min_samples": 50,
    "max_error_ratio": 0.05,
    "max_error_ratio_vs_baseline": 2.0,
    "baseline_error_ratio_floor": 0.01,
    "max_p95_ms": 500.0,
    "max_latency_regression": 0.10,
    "min_latency_regression_ms": 5.0,
}


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30),
        (2.5, 2.5),
        ("30", 30),
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("30d", 2592000),
        ("1w", 604800),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        (" 2M ", 120),
    ],
)
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["", "  ", "5 minutes", "abc", "5x", "-5s", True, None, "30d5", "inf", "nan", float("inf"), [30]]
)
def test_parse_duration_refuses_what_is_not_a_duration(value):
    with pytest.raises(SloConfigError, match=r"window must be a duration such as 30s, 5m or 30d, got"):
        parse_duration(value, "window")


@pytest.mark.parametrize(
    ("seconds", "text"), [(300, "5m"), (2592000, "30d"), (90, "90s"), (3600, "1h"), (1.5, "1500ms"), (60.0, "1m")]
)
def test_format_duration_for_promql(seconds, text):
    assert format_duration(seconds) == text


# --- the text format --------------------------------------------------------------------------------

HANDWRITTEN = r"""
# HELP http_requests_total HTTP requests answered.
# TYPE http_requests_total counter
http_requests_total{method="GET",path="/v1/infer",status="200",version="1.0.0"} 7.0
http_requests_total{method="GET",path="/say \"hi\"",status="500",version="1.0.0"} 2
http_requests_total{ method = "POST" , path="C:\\temp\nnext", status="503", } 1e1 1712345678000
http_requests_created{method="GET",path="/v1/infer",status="200",version="1.0.0"} 1.7e+09

weird_gauge NaN
other_total{le="+Inf"} +Inf # {trace_id="abc"} 1.0 1712345678
# EOF
"""


def test_parse_handwritten_text_with_escapes_timestamps_and_special_values():
    samples = parse_metrics(HANDWRITTEN)
    assert [(name, labels) for name, labels, _value in samples][:4] == [
        ("http_requests_total", {"method": "GET", "path": "/v1/infer", "status": "200", "version": "1.0.0"}),
        ("http_requests_total", {"method": "GET", "path": '/say "hi"', "status": "500", "version": "1.0.0"}),
        ("http_requests_total", {"method": "POST", "path": "C:\\temp\nnext", "status": "503"}),
        ("http_requests_created", {"method": "GET", "path": "/v1/infer", "status": "200", "version": "1.0.0"}),
    ]
    values = [value for _name, _labels, value in samples]
    assert values[:4] == [7.0, 2.0, 10.0, 1.7e9]
    assert math.isnan(values[4])
    assert samples[5] == ("other_total", {"le": "+Inf"}, INF)


def test_parse_the_real_client_library_output_with_created_lines_and_escaped_labels():
    registry = CollectorRegistry()
    labels = ("method", "path", "status", "version")
    requests = Counter("http_requests_total", "HTTP requests answered.", labels, registry=registry)
    duration = Histogram(
        "http_request_duration_seconds", "Duration.", labels, buckets=(0.005, 0.01, 0.1), registry=registry
    )
    tricky = 'a "quoted" \\ path\nwith a newline'
    for path, status, seconds in [("/v1/infer", "200", 0.003), ("/v1/infer", "500", 0.05), (tricky, "200", 7.0)]:
        requests.labels("GET", path, status, "1.0.0").inc()
        duration.labels("GET", path, status, "1.0.0").observe(seconds)
    text = generate_latest(registry).decode()
    assert "_created{" in text and '\\"quoted\\"' in text  # what the parser must cope with

    samples = parse_metrics(text)
    names = {name for name, _labels, _value in samples}
    assert names == {
        "http_requests_total",
        "http_requests_created",
        "http_request_duration_seconds_bucket",
        "http_request_duration_seconds_count",
        "http_request_duration_seconds_sum",
        "http_request_duration_seconds_created",
    }
    assert {labels["path"] for _name, labels, _value in samples} == {"/v1/infer", tricky}

    snap = snapshot(samples, MetricNames())
    assert sorted(snap["requests"].values()) == [1.0, 1.0, 1.0]
    assert len(snap["requests_created"]) == 3
    key = (("method", "GET"), ("path", tricky), ("status", "200"), ("version", "1.0.0"))
    assert snap["histograms"][key]["buckets"] == {0.005: 0.0, 0.01: 0.0, 0.1: 0.0, INF: 1.0}
    assert snap["histograms"][key]["count"] == 1.0
    assert snap["histograms"][key]["created"] > 1e9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('ok 1\nbad{path="/x} 1', "line 2: the value of label path is not closed"),
        ("ok{path=/x} 1", 'line 1: expected ="value" after label path'),
        ('ok{path="/x" status="200"} 1', "line 1: expected , or } after label path"),
        ('ok{1abc="x"} 1', "line 1: expected a label name at column 4"),
        ("ok", "line 1: expected a value (and maybe a timestamp) after ok"),
        ("ok one", "line 1: 'one' is not a number"),
        ('{path="/"} 1', "line 1: expected a metric name, got '{path=\"/\"} 1'"),
    ],
)
def test_malformed_text_names_the_line(text, message):
    with pytest.raises(MetricsFormatError) as info:
        parse_metrics(text)
    assert str(info.value) == message


def metrics_text(series, created=1700000000.0, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)):
    """Exposition text for {(method, path, status): [observations in seconds]}, as the example app writes it."""
    lines = []
    for (method, path, status), observations in series.items():
        labels = f'method="{method}",path="{path}",status="{status}",version="1.0.0"'
        lines.append(f"http_requests_total{{{labels}}} {float(len(observations))}")
        lines.append(f"http_requests_created{{{labels}}} {created}")
        for bound in buckets:
            count = sum(1 for value in observations if value <= bound)
            lines.append(f'http_request_duration_seconds_bucket{{le="{bound}",{labels}}} {float(count)}')
        lines.append(f'http_request_duration_seconds_bucket{{le="+Inf",{labels}}} {float(len(observations))}')
        lines.append(f"http_request_duration_seconds_count{{{labels}}} {float(len(observations))}")
        lines.append(f"http_request_duration_seconds_sum{{{labels}}} {sum(observations)}")
        lines.append(f"http_request_duration_seconds_created{{{labels}}} {created}")
    return "\n".join(lines) + "\n"


def snap(series, names=NAMES, **kwargs):
    return snapshot(parse_metrics(metrics_text(series, **kwargs)), names)


def test_snapshot_leaves_out_ignored_paths_and_other_methods():
    series = {
        ("GET", "/v1/infer", "200"): [0.001] * 3,
        ("POST", "/v1/infer", "200"): [0.001] * 2,
        ("GET", "/metrics", "200"): [0.001] * 9,
        ("GET", "/health", "200"): [0.001] * 9,
    }
    assert sum(snap(series)["requests"].values()) == 5
    only_post = MetricNames(ignore_paths=["/metrics"], methods=["post"])
    taken = snap(series, names=only_post)
    assert sum(taken["requests"].values()) == 2
    assert len(taken["histograms"]) == 1


# --- deltas, resets, merging --------------------------------------------------------------------------


def test_delta_counts_increases_and_only_5xx_as_errors():
    before = snap({("GET", "/a", "200"): [0.001] * 10, ("GET", "/a", "500"): [0.001] * 2})
    after = snap(
        {
            ("GET", "/a", "200"): [0.001] * 30,
            ("GET", "/a", "500"): [0.001] * 5,
            ("GET", "/a", "404"): [0.001] * 4,  # new series: counted from zero, not an error
            ("GET", "/a", "503"): [0.001] * 1,
        }
    )
    totals = delta(before, after)
    assert (totals.requests, totals.errors, totals.samples, totals.resets) == (28, 4, 28, 0)
    assert totals.buckets[0.005] == 28


def test_a_counter_that_went_down_is_a_restart_and_counts_its_new_value():
    before = snap({("GET", "/a", "200"): [0.001] * 100, ("GET", "/a", "500"): [0.001] * 5})
    after = snap({("GET", "/a", "200"): [0.001] * 7, ("GET", "/a", "500"): [0.001] * 1})
    totals = delta(before, after)
    assert (totals.requests, totals.errors, totals.samples) == (8, 1, 8)
    assert totals.resets == 4  # two counters and two histograms
    assert totals.buckets[INF] == 8


def test_a_changed_created_timestamp_is_a_restart_even_when_the_counter_grew():
    before = snap({("GET", "/a", "200"): [0.001] * 10}, created=1700000000.0)
    after = snap({("GET", "/a", "200"): [0.001] * 15}, created=1700000100.0)
    totals = delta(before, after)
    assert (totals.requests, totals.samples, totals.resets) == (15, 15, 2)
    same_process = snap({("GET", "/a", "200"): [0.001] * 15}, created=1700000000.0)
    assert delta(before, same_process).requests == 5


def test_a_vanished_series_counts_nothing():
    before = snap({("GET", "/a", "200"): [0.001] * 10, ("GET", "/b", "500"): [0.001] * 3})
    after = snap({("GET", "/a", "200"): [0.001] * 12})
    totals = delta(before, after)
    assert (totals.requests, totals.errors) == (2, 0)


def test_merging_targets_sums_their_deltas_and_buckets():
    fast = delta(snap({("GET", "/a", "200"): []}), snap({("GET", "/a", "200"): [0.004] * 90}))
    slow = delta(
        snap({("GET", "/a", "200"): [], ("GET", "/a", "500"): []}),
        snap({("GET", "/a", "200"): [0.3] * 8, ("GET", "/a", "500"): [0.3] * 2}),
    )
    merged = Totals().add(fast).add(slow)
    assert (merged.requests, merged.errors, merged.samples) == (100, 2, 100)
    assert merged.buckets[0.005] == 90 and merged.buckets[0.25] == 90 and merged.buckets[0.5] == 100
    # p50 among the 90 fast ones (0..5 ms), p95 and p99 in the (0.25, 0.5] bucket of the 10 slow ones
    assert merged.percentiles() == {"p50_ms": pytest.approx(2.778, abs=1e-3), "p95_ms": 375.0, "p99_ms": 475.0}


# --- percentiles --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantile", "expected"),
    [
        (0.05, 0.05),  # first bucket, interpolated from 0
        (0.10, 0.1),  # exactly the first bucket's count
        (0.20, 0.15),  # (0.1, 0.2]: rank 20 is half way between 10 and 30
        (0.50, 0.3),  # (0.2, 0.5]: rank 50 is 20 of 60 into it
        (0.90, 0.5),
        (0.95, 0.5),  # +Inf bucket: the highest finite bound
        (0.99, 0.5),
    ],
)
def test_histogram_quantile_interpolates_like_promql(quantile, expected):
    buckets = {0.1: 10, 0.2: 30, 0.5: 90, INF: 100}
    assert histogram_quantile(quantile, buckets) == pytest.approx(expected)


def test_histogram_quantile_edge_cases():
    assert histogram_quantile(0.5, {}) is None
    assert histogram_quantile(0.5, {0.1: 0, INF: 0}) is None  # no observation
    assert histogram_quantile(0.5, {0.1: 3, 0.2: 4}) is None  # no +Inf bucket
    assert histogram_quantile(0.5, {INF: 4}) is None  # no finite bucket
    assert histogram_quantile(0.5, {0.0: 4, 1.0: 4, INF: 4}) == 0.0  # a bound at 0 is returned as is
    # a cumulative count that dips (scrape noise) is repaired as PromQL does
    assert histogram_quantile(0.5, {0.1: 10, 0.2: 8, 0.4: 20, INF: 20}) == pytest.approx(0.1)
    # everything above the last finite bound
    assert histogram_quantile(0.5, {0.1: 0, 0.2: 0, INF: 7}) == 0.2


# --- the verdict --------------------------------------------------------------------------------


def stats(requests, errors, p95, p50=None, p99=None):
    return group_stats(requests, errors, requests, {"p50_ms": p50 or p95 / 2, "p95_ms": p95, "p99_ms": p99 or p95})


def decide(canary, baseline=None, incomplete=None, **overrides):
    return judge(canary, baseline, Thresholds(**{**DEFAULTS, **overrides}), "60s", incomplete)


def test_promote_when_every_threshold_holds():
    verdict, reasons = decide(stats(500, 2, 120.0), stats(1500, 3, 115.0))
    assert verdict == "promote"
    assert reasons == [
        "canary error ratio 0.40% (2 of 500 requests) is within the maximum of 5.00%",
        "canary p95 latency 120.0 ms is within the maximum of 500.0 ms",
        "canary error ratio 0.40% is within 2x the floor of 1.00% (baseline 0.20%) = 2.00%",
        "canary p95 latency 120.0 ms is +4.3% against the baseline's 115.0 ms "
        "(allowed: +10% and at least +5 ms, i.e. up to 126.5 ms)",
    ]


def test_too_few_samples_hold():
    verdict, reasons = decide(stats(49, 40, 900.0))
    assert verdict == "hold"
    assert reasons == ["canary served 49 requests in the last 60s, fewer than min_samples 50: not enough to judge"]
    verdict, reasons = decide(stats(100, 0, 10.0), stats(10, 0, 10.0))
    assert verdict == "hold"
    assert reasons == [
        "baseline served 10 requests in the last 60s, fewer than min_samples 50: the canary cannot be compared with it"
    ]


def test_baseline_without_errors_does_not_turn_one_canary_error_into_a_rollback():
    verdict, reasons = decide(stats(100, 1, 20.0), stats(1000, 0, 20.0))
    assert verdict == "promote"
    assert "canary error ratio 1.00% is within 2x the floor of 1.00% (baseline 0.00%) = 2.00%" in reasons
    verdict, reasons = decide(stats(100, 3, 20.0), stats(1000, 0, 20.0))
    assert verdict == "rollback"
    assert reasons == ["canary error ratio 3.00% is above 2x the floor of 1.00% (baseline 0.00%) = 2.00%"]
    # without the floor the seed's rule is applied literally: one error against none fails
    verdict, reasons = decide(stats(100, 1, 20.0), stats(1000, 0, 20.0), baseline_error_ratio_floor=0.0)
    assert verdict == "rollback"
    assert reasons == ["canary error ratio 1.00% is above 2x the baseline's 0.00% = 0.00%"]


@pytest.mark.parametrize(
    ("canary", "baseline", "overrides", "reason"),
    [
        (stats(100, 6, 20.0), None, {}, "canary error ratio 6.00% (6 of 100 requests) is above the maximum of 5.00%"),
        (stats(100, 0, 612.5), None, {}, "canary p95 latency 612.5 ms is above the maximum of 500.0 ms"),
        (
            stats(200, 9, 20.0),
            stats(1000, 20, 20.0),
            {},
            "canary error ratio 4.50% is above 2x the baseline's 2.00% = 4.00%",
        ),
        (
            stats(100, 0, 115.5),
            stats(1000, 0, 100.0),
            {},
            "canary p95 latency 115.5 ms is +15.5% against the baseline's 100.0 ms "
            "(allowed: +10% and at least +5 ms, i.e. up to 110.0 ms)",
        ),
        (
            stats(100, 0, 10.5),
            stats(1000, 0, 5.0),
            {},
            "canary p95 latency 10.5 ms is +110.0% against the baseline's 5.0 ms "
            "(allowed: +10% and at least +5 ms, i.e. up to 10.0 ms)",
        ),
        (stats(100, 0, 30.0), None, {"max_p95_ms": 25}, "canary p95 latency 30.0 ms is above the maximum of 25.0 ms"),
    ],
    ids=["error-ratio", "p95", "vs-baseline-errors", "latency-regression", "regression-above-the-slack", "custom-p95"],
)
def test_each_threshold_rolls_back_with_its_reason(canary, baseline, overrides, reason):
    verdict, reasons = decide(canary, baseline, **overrides)
    assert verdict == "rollback"
    assert reasons == [reason]


def test_small_latency_differences_are_within_the_slack():
    verdict, _reasons = decide(stats(100, 0, 8.0), stats(1000, 0, 4.0))  # +100 % but only +4 ms
    assert verdict == "promote"


def test_rollback_beats_hold_and_hold_beats_promote():
    incomplete = {"canary": "http://app2:8000/metrics could not be scraped twice (connection refused)"}
    verdict, reasons = decide(stats(100, 20, 20.0), incomplete=incomplete)
    assert verdict == "rollback"
    assert reasons == ["canary error ratio 20.00% (20 of 100 requests) is above the maximum of 5.00%"]
    verdict, reasons = decide(stats(100, 0, 20.0), incomplete=incomplete)
    assert verdict == "hold"
    assert reasons == ["canary data is incomplete: " + incomplete["canary"]]
    no_latency = group_stats(100, 0, 0, {})
    verdict, reasons = decide(no_latency)
    assert (verdict, reasons) == (
        "hold",
        ["canary has no latency observations (no histogram buckets): p95 cannot be checked"],
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_samples": 0}, "min_samples must be at least 1, got 0"),
        ({"max_error_ratio": 5}, "max_error_ratio is a ratio between 0 and 1 (0.05 means 5 %), got 5"),
        ({"max_error_ratio": -0.1}, "max_error_ratio is a ratio between 0 and 1"),
        ({"baseline_error_ratio_floor": 1.5}, "baseline_error_ratio_floor is a ratio between 0 and 1"),
        ({"max_error_ratio_vs_baseline": 0}, "max_error_ratio_vs_baseline must be above 0"),
        ({"max_p95_ms": -1}, "max_p95_ms must be above 0, got -1"),
        ({"max_latency_regression": -0.1}, "max_latency_regression must not be negative"),
        ({"min_latency_regression_ms": -2}, "min_latency_regression_ms must not be negative, got -2"),
    ],
)
def test_thresholds_out_of_range_are_refused(overrides, message):
    with pytest.raises(SloConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Thresholds(**{**DEFAULTS, **overrides}).check()


# --- the error budget ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("consumed", "state"),
    [(0.0, "HEALTHY"), (0.49, "HEALTHY"), (0.5, "WARNING"), (0.74, "WARNING"), (0.75, "CRITICAL"), (0.99, "CRITICAL")]
    + [(1.0, "EXHAUSTED"), (3.0, "EXHAUSTED")],
)
def test_budget_states_follow_the_seed(consumed, state):
    assert budget_state(consumed)[0] == state


def test_the_seeds_example_is_exhausted_and_blocked():
    # seed 000 section 5.4: availability 99.85 % against an SLO of 99.9 % over 30 days
    verdict, reasons, evidence = BudgetPolicy(0.999, 30 * 86400, 0.75, "30d").judge(1_000_000, 1_500)
    assert verdict == "block"
    assert evidence["consumed_pct"] == 150.0
    assert evidence["remaining_pct"] == -50.0
    assert evidence["state"] == "EXHAUSTED"
    assert evidence["budget_seconds"] == 2592.0  # 43.2 minutes
    assert evidence["consumed_seconds"] == 3888.0
    assert reasons == [
        "150.0% of the error budget is consumed (1500 errors in 1000000 requests over 30d: error ratio 0.1500% "
        "against a budget of 0.1% for an SLO of 99.9%); state EXHAUSTED: emergency freeze, focus on reliability; "
        "above the 75% allowed, so changes are blocked"
    ]


@pytest.mark.parametrize(
    ("errors", "verdict", "state"),
    [(400, "allow", "HEALTHY"), (600, "allow", "WARNING"), (750, "allow", "CRITICAL"), (751, "block", "CRITICAL")],
)
def test_block_only_above_max_consumed(errors, verdict, state):
    got, _reasons, evidence = BudgetPolicy(0.999, 86400, 0.75, "1d").judge(1_000_000, errors)
    assert (got, evidence["state"]) == (verdict, state)


def test_no_requests_hold_the_budget_gate():
    verdict, reasons, evidence = BudgetPolicy().judge(0, 0)
    assert verdict == "hold"
    assert evidence["consumed"] is None
    assert reasons == ["no requests were counted over the last 30d: the error budget cannot be computed"]


# --- sampling /metrics directly ---------------------------------------------------------------


def test_metrics_url():
    assert metrics_url("http://10.0.0.1:8000") == "http://10.0.0.1:8000/metrics"
    assert metrics_url("https://app1/") == "https://app1/metrics"
    assert metrics_url("http://app1:9100/custom") == "http://app1:9100/custom"
    with pytest.raises(SloConfigError, match="is not an http:// or https:// URL"):
        metrics_url("app1:8000")
    with pytest.raises(SloConfigError, match="has an invalid port"):
        metrics_url("http://app1:99999/metrics")


def test_sampling_with_an_interval_sees_a_restart_the_end_points_would_miss(scripted_server):
    # scrape 1: 100 requests; scrape 2: the process restarted (5); scrape 3: it has grown to 120
    texts = [
        metrics_text({("GET", "/a", "200"): [0.001] * 100}),
        metrics_text({("GET", "/a", "200"): [0.001] * 5}),
        metrics_text({("GET", "/a", "200"): [0.001] * 120}),
    ]
    server = scripted_server(lambda number: (200, texts[min(number, 3) - 1].encode()))
    reports = Scraper(NAMES, timeout=2).sample([server.url + "/metrics"], window=0.4, interval=0.2)
    report = reports[server.url + "/metrics"]
    assert (report["scrapes"], report["failed_scrapes"], report["error"]) == (3, 0, None)
    assert (report["totals"].requests, report["totals"].resets) == (120, 2)
    assert server.requests == 3


def test_sampling_reports_targets_that_cannot_be_scraped(scripted_server):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/metrics"
    broken = scripted_server(lambda number: (200, b'bad{path="/x} 1\n'))
    failing = scripted_server(lambda number: (503, b"starting"))
    reports = Scraper(NAMES, timeout=1).sample([closed, broken.url, failing.url], window=0.1)
    assert reports[closed] == {"totals": None, "scrapes": 0, "failed_scrapes": 2, "error": "connection refused"}
    assert reports[broken.url]["error"] == "line 1: the value of label path is not closed"
    assert reports[failing.url]["error"] == "HTTP 503, expected 200"


# --- Prometheus ------------------------------------------------------------------------------------


class StubPrometheus:
    """A stand-in for Prometheus' query API on 127.0.0.1: answer(query) -> (status, document or bytes)."""

    def __init__(self, answer):
        self.queries = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                query = parse_qs(parts.query).get("query", [""])[0]
                owner.queries.append((parts.path, query))
                status, document = answer(query)
                body = document if isinstance(document, bytes) else json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_prometheus():
    stubs = []

    def start(answer):
        stubs.append(StubPrometheus(answer))
        return stubs[-1]

    yield start
    for stub in stubs:
        stub.close()


def vector(*values):
    result = [{"metric": {"le": str(index)}, "value": [1712345678.1, value]} for index, value in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_promql_string_escapes():
    assert promql_string('a"b\\c') == '"a\\"b\\\\c"'


def test_selector_from_urls_instances_and_matchers():
    selector = Selector(
        ["http://10.0.0.1:8000/metrics", "app2:8000", 'version="1.4.0"', "app2:8000"],
        base='{job="app"}',
        ignore_paths=["/metrics", "/health"],
        methods=["get", "post"],
    )
    assert selector.render('status=~"5.."') == (
        '{job="app", version="1.4.0", instance=~"10\\\\.0\\\\.0\\\\.1:8000|app2:8000", '
        'path!~"/metrics|/health", method=~"GET|POST", status=~"5.."}'
    )
    assert Selector(['track="canary"']).render() == '{track="canary"}'


def test_group_queries_use_increase_and_histogram_quantile_over_the_window():
    queries = group_queries(Selector(['track="canary"']), 300, "http_requests_total", "http_request_duration_seconds")
    assert queries == {
        "requests": 'sum(increase(http_requests_total{track="canary"}[5m]))',
        "errors": 'sum(increase(http_requests_total{track="canary", status=~"5.."}[5m]))',
        "samples": 'sum(increase(http_request_duration_seconds_count{track="canary"}[5m]))',
        "p50_ms": 'histogram_quantile(0.5, sum by (le) (increase(http_request_duration_seconds_bucket{track="canary"}'
        "[5m])))",
        "p95_ms": 'histogram_quantile(0.95, sum by (le) (increase(http_request_duration_seconds_bucket{track="canary"}'
        "[5m])))",
        "p99_ms": 'histogram_quantile(0.99, sum by (le) (increase(http_request_duration_seconds_bucket{track="canary"}'
        "[5m])))",
    }


def test_prometheus_numbers_sum_vectors_and_turn_nan_and_empty_into_none(stub_prometheus):
    answers = {"a": vector("1.5", "2"), "b": vector(), "c": vector("NaN"), "d": vector("+Inf"), "e": vector("0.25")}
    stub = stub_prometheus(lambda query: (200, answers[query]))
    prometheus = Prometheus(stub.url + "/prefix/", timeout=2)
    assert prometheus.number("a") == 3.5
    assert prometheus.number("b") is None
    assert prometheus.number("c") is None
    assert group_numbers(prometheus, {"requests": "a", "p95_ms": "e", "p99_ms": "d"}) == {
        "requests": 3.5,
        "p95_ms": 250.0,
        "p99_ms": None,
    }
    assert stub.queries[0] == ("/prefix/api/v1/query", "a")


@pytest.mark.parametrize(
    ("status", "document", "message"),
    [
        (
            400,
            {"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unexpected"},
            "refused the query sum(x (HTTP 400): bad_data: 1:5: parse error: unexpected",
        ),
        (
            503,
            {"status": "error", "errorType": "unavailable", "error": "TSDB not ready"},
            "(HTTP 503): unavailable: TSDB not ready",
        ),
        (502, b"<html>Bad Gateway</html>", "answered HTTP 502 with a body that is not JSON"),
        (
            200,
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            "with a 'matrix' result, expected an instant vector",
        ),
        (200, {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1]}]}}, "malformed value"),
    ],
)
def test_prometheus_errors_are_sentences(stub_prometheus, status, document, message):
    stub = stub_prometheus(lambda query: (status, document))
    with pytest.raises(PrometheusError) as info:
        Prometheus(stub.url, timeout=2).number("sum(x")
    assert message in str(info.value)


def test_prometheus_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(
        PrometheusError, match=r"cannot reach Prometheus at http://127\.0\.0\.1:\d+: connection refused"
    ):
        Prometheus(url, timeout=1).number("up")
    with pytest.raises(SloConfigError, match="prometheus_url 'prometheus:9090' is not an http"):
        Prometheus("prometheus:9090")
