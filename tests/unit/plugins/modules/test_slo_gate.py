"""The slo_gate module, run as Ansible runs it: against the real example app under uvicorn
(sampling its /metrics while the test sends it traffic), scripted /metrics servers and a stub
of Prometheus' query API."""

import collections
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import types

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.aistack.fleet.plugins.module_utils import slo
from ansible_collections.aistack.fleet.plugins.modules import slo_gate
from tests.unit.conftest import REPO, free_port
from tests.unit.plugins.module_utils.test_slo import StubPrometheus, metrics_text, vector

APP_SRC = REPO / "examples" / "app" / "src"


def run_module(capsys, check_mode=False, **args):
    """main() with these arguments: (exit code, the JSON result Ansible would receive)."""
    if check_mode:
        args["_ansible_check_mode"] = True
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        slo_gate.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def closed_port_url():
    return f"http://127.0.0.1:{free_port()}"


# --- the example app in a uvicorn subprocess, and traffic for it -------------------------------------


class App:
    """`uvicorn aistack_example_app.main:app` on a free 127.0.0.1 port, configured by environment."""

    def __init__(self, **env):
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "uvicorn", "aistack_example_app.main:app", "--fd", str(sock.fileno())]
        command += ["--log-level", "warning", "--no-access-log"]
        environment = {**os.environ, "PYTHONPATH": str(APP_SRC), **env}
        self.process = subprocess.Popen(command, env=environment, pass_fds=[sock.fileno()])
        sock.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the example app exited with {self.process.returncode} while starting")
            try:
                if self.get("/health") == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail("the example app did not answer /health within 30s")

    def get(self, path):
        """One request on a new connection (keep-alive meets Nagle's algorithm: 40 ms a request)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class Load:
    """Traffic sent from `threads` threads once the gate has scraped its targets for the first
    time (`started`, an Event): `count` inference requests, and health checks, which the gate
    must not count. Each thread waits at most `delay` seconds for that event."""

    def __init__(self, app, count, started, *, threads=1, health_checks=10, delay=5.0):
        self.statuses = collections.Counter()
        self._lock = threading.Lock()
        share = [count // threads + (1 if index < count % threads else 0) for index in range(threads)]
        self._threads = [
            threading.Thread(target=self._run, args=(app, number, started, delay, health_checks if index == 0 else 0))
            for index, number in enumerate(share)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, app, count, started, delay, health_checks):
        started.wait(delay)
        for number in range(count):
            status = app.get(f"/v1/infer?text=request-{number}")
            with self._lock:
                self.statuses[status] += 1
        for _number in range(health_checks):
            app.get("/health")

    def join(self):
        for thread in self._threads:
            thread.join(30)
        return self.statuses


@pytest.fixture(scope="module")
def apps():
    """Start example apps by settings, once per module: apps(**env) -> App."""
    running = {}

    def start(**env):
        key = tuple(sorted(env.items()))
        if key not in running:
            running[key] = App(**env)
        return running[key]

    yield start
    for app in running.values():
        app.stop()


@pytest.fixture
def scraped(monkeypatch):
    """An Event set when the gate, having scraped every target once, starts waiting for the window's end."""
    event = threading.Event()

    def sleep(seconds):
        event.set()
        time.sleep(seconds)

    monkeypatch.setattr(slo, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    return event


@pytest.fixture
def healthy(apps):
    return apps()


@pytest.fixture
def faulty(apps):
    return apps(APP_FAULT_ERROR_RATIO="0.5", APP_FAULT_SEED="7")


@pytest.fixture
def slow(apps):
    return apps(APP_FAULT_LATENCY_MS="40")


# --- direct sampling of the real app ----------------------------------------------------------------


def test_a_healthy_canary_is_promoted_with_the_exact_numbers(capsys, scraped, healthy):
    load = Load(healthy, 120, scraped)
    code, result = run_module(capsys, canary=[healthy.url], window=2)
    statuses = load.join()
    assert statuses == {200: 120}
    assert code == 0
    assert result["changed"] is False
    assert result["verdict"] == "promote"
    canary = result["evidence"]["groups"]["canary"]
    assert (canary["requests"], canary["errors"], canary["error_ratio"], canary["samples"]) == (120, 0, 0.0, 120)
    assert 0 < canary["p50_ms"] <= canary["p95_ms"] <= canary["p99_ms"] < 500
    assert canary["targets"] == [
        {
            "url": f"{healthy.url}/metrics",
            "requests": 120,
            "errors": 0,
            "resets": 0,
            "scrapes": 2,
            "failed_scrapes": 0,
            "error": None,
        }
    ]
    assert result["reasons"] == [
        "canary error ratio 0.00% (0 of 120 requests) is within the maximum of 5.00%",
        f"canary p95 latency {canary['p95_ms']:.1f} ms is within the maximum of 500.0 ms",
    ]
    assert result["msg"] == "promote: " + "; ".join(result["reasons"])
    assert result["evidence"]["source"] == "metrics"
    assert result["evidence"]["window_seconds"] == 2.0
    assert result["evidence"]["thresholds"]["max_error_ratio"] == 0.05


def test_a_canary_failing_half_its_requests_is_rolled_back_against_a_healthy_baseline(capsys, scraped, healthy, faulty):
    canary_load, baseline_load = Load(faulty, 120, scraped), Load(healthy, 120, scraped)
    code, result = run_module(capsys, canary=[faulty.url], baseline=[f"{healthy.url}/metrics"], window=2)
    failed = canary_load.join()[500]
    assert baseline_load.join() == {200: 120}
    assert 30 < failed < 90
    assert code == 0  # the playbook decides
    assert result["verdict"] == "rollback"
    groups = result["evidence"]["groups"]
    assert (groups["canary"]["requests"], groups["canary"]["errors"]) == (120, failed)
    assert groups["canary"]["error_ratio"] == round(failed / 120, 6)
    assert (groups["baseline"]["requests"], groups["baseline"]["errors"]) == (120, 0)
    share = f"{failed / 120 * 100:.2f}%"
    assert result["reasons"] == [
        f"canary error ratio {share} ({failed} of 120 requests) is above the maximum of 5.00%",
        f"canary error ratio {share} is above 2x the floor of 1.00% (baseline 0.00%) = 2.00%",
    ]


def test_targets_of_a_group_are_summed(capsys, scraped, healthy, faulty):
    loads = [Load(healthy, 100, scraped), Load(faulty, 100, scraped)]
    code, result = run_module(capsys, canary=[healthy.url, faulty.url], window=2, max_error_ratio=0.5)
    failed = loads[1].join()[500]
    loads[0].join()
    canary = result["evidence"]["groups"]["canary"]
    assert code == 0
    assert (canary["requests"], canary["errors"], canary["samples"]) == (200, failed, 200)
    assert [(t["requests"], t["errors"]) for t in canary["targets"]] == [(100, 0), (100, failed)]
    assert result["verdict"] == "promote"  # about 25 %, within the 50 % allowed here
    assert result["reasons"][0] == (
        f"canary error ratio {failed / 200 * 100:.2f}% ({failed} of 200 requests) is within the maximum of 50.00%"
    )


def test_a_slower_canary_is_rolled_back_for_its_latency_regression(capsys, scraped, healthy, slow):
    loads = [Load(slow, 60, scraped, threads=4), Load(healthy, 60, scraped, threads=4)]
    code, result = run_module(capsys, canary=[slow.url], baseline=[healthy.url], window=2, min_samples=50)
    for load in loads:
        load.join()
    groups = result["evidence"]["groups"]
    canary_p95, baseline_p95 = groups["canary"]["p95_ms"], groups["baseline"]["p95_ms"]
    assert code == 0
    assert 25 < canary_p95 <= 100  # 40 ms of added latency: the (25 ms, 50 ms] bucket, (50, 100] when busy
    assert baseline_p95 < 25
    assert result["verdict"] == "rollback"
    allowed = max(baseline_p95 * 1.1, baseline_p95 + 5)
    assert result["reasons"] == [
        f"canary p95 latency {canary_p95:.1f} ms is {(canary_p95 - baseline_p95) / baseline_p95 * 100:+.1f}% against "
        f"the baseline's {baseline_p95:.1f} ms (allowed: +10% and at least +5 ms, i.e. up to {allowed:.1f} ms)"
    ]


def test_abort_early_rolls_a_bad_canary_back_at_the_first_evidence(capsys, scraped, healthy, faulty):
    """Against the real app: 50 % errors are seen at the first scrape with min_samples requests,
    long before the end of a 30 s window."""
    loads = [Load(faulty, 120, scraped), Load(healthy, 120, scraped)]
    started = time.monotonic()
    code, result = run_module(
        capsys, canary=[faulty.url], baseline=[healthy.url], window=30, interval=0.5, abort_early=True
    )
    took = time.monotonic() - started
    for load in loads:
        load.join()
    canary = result["evidence"]["groups"]["canary"]
    assert code == 0
    assert result["verdict"] == "rollback"
    assert took < 10 and result["evidence"]["decided_after"] < 10
    assert result["evidence"]["window_seconds"] == 30.0
    assert canary["requests"] >= 50 and canary["error_ratio"] > 0.05
    assert re.match(r"canary error ratio .* is above the maximum of 5\.00%$", result["reasons"][0])
    # The series ends with the numbers the verdict was taken on, one point per scrape after the first.
    series = result["evidence"]["series"]
    assert [point["seconds"] for point in series] == sorted(point["seconds"] for point in series)
    assert series[-1]["canary"] == {key: canary[key] for key in ("requests", "errors", "error_ratio", "p95_ms")}
    assert series[-1]["seconds"] <= result["evidence"]["decided_after"] + 0.5


def test_abort_early_leaves_latency_to_the_end_of_the_window(capsys, scraped, healthy, slow):
    loads = [Load(slow, 60, scraped, threads=4), Load(healthy, 60, scraped, threads=4)]
    code, result = run_module(
        capsys, canary=[slow.url], baseline=[healthy.url], window=3, interval=0.5, min_samples=50, abort_early=True
    )
    for load in loads:
        load.join()
    assert code == 0
    assert result["verdict"] == "rollback"
    assert result["evidence"]["decided_after"] == 3.0
    assert result["reasons"][0].startswith("canary p95 latency")


def test_abort_early_waits_for_the_whole_window_to_promote(capsys, scraped, healthy):
    load = Load(healthy, 120, scraped)
    code, result = run_module(capsys, canary=[healthy.url], window=2, interval=0.5, abort_early=True)
    load.join()
    assert code == 0
    assert result["verdict"] == "promote"
    assert result["evidence"]["decided_after"] == 2.0
    assert result["evidence"]["groups"]["canary"]["targets"][0]["scrapes"] == 5
    # Four points, every 0.5 s; the requests counted from the start of the window only grow.
    series = result["evidence"]["series"]
    assert [round(point["seconds"] * 2) for point in series] == [1, 2, 3, 4]
    assert [point["canary"]["requests"] for point in series] == sorted(point["canary"]["requests"] for point in series)
    assert series[-1]["canary"]["requests"] == result["evidence"]["groups"]["canary"]["requests"]


def test_too_few_requests_hold(capsys, scraped, healthy):
    load = Load(healthy, 10, scraped)
    code, result = run_module(capsys, canary=[healthy.url], window=1)
    load.join()
    assert code == 0
    assert result["verdict"] == "hold"
    assert result["reasons"] == [
        "canary served 10 requests in the last 1s, fewer than min_samples 50: not enough to judge"
    ]


@pytest.mark.parametrize("broken", [False, True], ids=["healthy", "faulty"])
def test_check_mode_measures_and_gives_the_same_verdict(capsys, scraped, healthy, faulty, broken):
    app = faulty if broken else healthy
    load = Load(app, 80, scraped)
    code, result = run_module(capsys, check_mode=True, canary=[app.url], window=1.5)
    load.join()
    assert code == 0
    assert result["changed"] is False
    assert result["verdict"] == ("rollback" if broken else "promote")
    assert result["evidence"]["groups"]["canary"]["requests"] == 80


def test_fail_on_turns_a_verdict_into_a_failure(capsys, scraped, faulty):
    load = Load(faulty, 80, scraped)
    code, result = run_module(capsys, canary=[faulty.url], window=1.5, fail_on=["hold", "rollback"])
    load.join()
    assert code == 1
    assert result["failed"] is True
    assert result["verdict"] == "rollback"
    assert result["msg"].startswith("the verdict is rollback, which fail_on turns into a failure: canary error ratio")


def test_error_budget_sampled_from_the_real_app_is_blocked(capsys, scraped, faulty):
    load = Load(faulty, 100, scraped)
    code, result = run_module(capsys, mode="error_budget", error_budget={"targets": [faulty.url]}, window=1.5)
    failed = load.join()[500]
    budget = result["evidence"]["budget"]
    assert code == 0
    assert result["verdict"] == "block"
    assert result["evidence"]["source"] == "metrics"
    assert (budget["requests"], budget["errors"], budget["state"]) == (100, failed, "EXHAUSTED")
    assert budget["consumed_pct"] == pytest.approx(failed / 100 / 0.001 * 100)
    assert "over 1.5s" in result["reasons"][0]
    assert "above the 75% allowed, so changes are blocked" in result["reasons"][0]


# --- direct sampling of scripted /metrics servers -------------------------------------------------------


def test_a_restart_during_the_window_counts_the_new_process_only(capsys, scripted_server):
    before = {("GET", "/v1/infer", "200"): [0.004] * 900, ("GET", "/v1/infer", "500"): [0.004] * 5}
    after = {("GET", "/v1/infer", "200"): [0.02] * 57, ("GET", "/v1/infer", "500"): [0.02] * 3}
    texts = [metrics_text(before), metrics_text(after, created=1700009999.0)]
    server = scripted_server(lambda number: (200, texts[min(number, 2) - 1].encode()))
    code, result = run_module(capsys, canary=[server.url], window=0.3)
    canary = result["evidence"]["groups"]["canary"]
    assert code == 0
    assert (canary["requests"], canary["errors"], canary["samples"]) == (60, 3, 60)
    assert canary["targets"][0]["resets"] == 4
    assert canary["p95_ms"] == pytest.approx(10 + 15 * 0.95)  # all in the (10 ms, 25 ms] bucket
    assert result["verdict"] == "promote"
    assert result["reasons"][0] == "canary error ratio 5.00% (3 of 60 requests) is within the maximum of 5.00%"


def test_an_unreachable_canary_target_holds_and_says_why(capsys, scripted_server):
    good = {("GET", "/v1/infer", "200"): [0.004] * 100}
    texts = [metrics_text({}), metrics_text(good)]
    server = scripted_server(lambda number: (200, texts[min(number, 2) - 1].encode()))
    dead = closed_port_url()
    code, result = run_module(capsys, canary=[server.url, dead], window=0.3)
    assert code == 0
    assert result["verdict"] == "hold"
    assert result["reasons"] == [
        f"canary data is incomplete: {dead}/metrics could not be scraped twice (connection refused)"
    ]
    targets = result["evidence"]["groups"]["canary"]["targets"]
    assert targets[1] == {
        "url": f"{dead}/metrics",
        "requests": None,
        "errors": None,
        "resets": None,
        "scrapes": 0,
        "failed_scrapes": 2,
        "error": "connection refused",
    }


def test_an_error_budget_sample_with_an_unreachable_target_holds(capsys, scripted_server):
    texts = [metrics_text({}), metrics_text({("GET", "/v1/infer", "200"): [0.004] * 1000})]
    server = scripted_server(lambda number: (200, texts[min(number, 2) - 1].encode()))
    dead = closed_port_url()
    args = {"mode": "error_budget", "error_budget": {"targets": [server.url, dead]}, "window": 0.3}
    code, result = run_module(capsys, **args)
    assert code == 0
    assert result["verdict"] == "hold"
    assert result["evidence"]["budget"]["requests"] == 1000
    assert result["evidence"]["budget"]["state"] == "HEALTHY"
    assert result["reasons"][-1] == (
        f"the sample is incomplete: {dead}/metrics could not be scraped twice (connection refused)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"canary": []}, "canary is empty"),
        ({"canary": None}, "canary is empty"),
        ({"baseline": []}, "baseline is empty"),
        ({"window": 0}, "window must be above 0, got 0"),
        ({"window": "-5"}, "window must be above 0"),
        ({"window": "5 minutes"}, "window must be a duration such as 30s, 5m or 30d, got '5 minutes'"),
        ({"interval": "0s"}, "interval must be above 0"),
        ({"timeout": 0}, "timeout must be above 0"),
        ({"min_samples": 0}, "min_samples must be at least 1, got 0"),
        ({"max_error_ratio": 5}, "max_error_ratio is a ratio between 0 and 1 (0.05 means 5 %), got 5"),
        ({"max_error_ratio": -0.01}, "max_error_ratio is a ratio between 0 and 1"),
        ({"max_error_ratio_vs_baseline": -2}, "max_error_ratio_vs_baseline must be above 0"),
        ({"max_p95_ms": 0}, "max_p95_ms must be above 0"),
        ({"max_latency_regression": -0.1}, "max_latency_regression must not be negative"),
        ({"baseline_error_ratio_floor": 2}, "baseline_error_ratio_floor is a ratio between 0 and 1"),
        ({"mode": "canary"}, "value of mode must be one of: compare, error_budget, got: canary"),
        ({"fail_on": ["explode"]}, "value of fail_on must be one or more of"),
        ({"canary": ["app1:8000"]}, "'app1:8000' is not an http:// or https:// URL with a host"),
        ({"prometheus_url": "prometheus:9090"}, "prometheus_url 'prometheus:9090' is not an http"),
        ({"ca_path": "/nonexistent/ca.pem"}, "cannot load the TLS material"),
        ({"client_key": "/k.pem"}, "client_cert"),
        ({"mode": "error_budget", "error_budget": {"slo_target": 99.9}}, "0.999 means 99.9 %), got 99.9"),
        ({"mode": "error_budget", "error_budget": {"slo_target": 1}}, "error_budget.slo_target is a ratio"),
        ({"mode": "error_budget", "error_budget": {"window": "0d"}}, "error_budget.window must be above 0"),
        ({"mode": "error_budget", "error_budget": {"max_consumed": 75}}, "0.75 means 75 %), got 75"),
        ({"mode": "error_budget", "error_budget": {"requests": 10}}, "give both or neither"),
        (
            {"mode": "error_budget", "error_budget": {"requests": 10, "errors": 11}},
            "error_budget.errors (11) cannot be more than error_budget.requests (10)",
        ),
        ({"mode": "error_budget", "error_budget": {"requests": -1, "errors": 0}}, "must not be negative"),
        ({"mode": "error_budget", "error_budget": {}}, "mode=error_budget needs the counts"),
        ({"abort_early": True}, "abort_early judges the canary at every scrape: it needs mode=compare, an interval"),
        (
            {"abort_early": True, "interval": 5, "prometheus_url": "http://127.0.0.1:9"},
            "the targets' /metrics sampled directly (no prometheus_url)",
        ),
    ],
)
def test_settings_that_cannot_work_fail_before_any_request(capsys, scripted_server, args, message):
    server = scripted_server(lambda number: (200, b""))
    code, result = run_module(capsys, **{"canary": [server.url], "window": 30, **args})
    assert code == 1
    assert message in result["msg"]
    assert "Traceback" not in result["msg"]
    assert server.requests == 0


# --- Prometheus ----------------------------------------------------------------------------------------


@pytest.fixture
def prometheus():
    stubs = []

    def start(answer):
        stubs.append(StubPrometheus(answer))
        return stubs[-1]

    yield start
    for stub in stubs:
        stub.close()


def canary_and_baseline(numbers):
    """An answer() giving {group: {field: value}} for the queries of each group."""

    def answer(query):
        group = numbers["canary" if 'version="2.0.0"' in query else "baseline"]
        if query.startswith("histogram_quantile("):
            quantile = query.split("(")[1].split(",")[0]
            return 200, vector(str(group[f"p{round(float(quantile) * 100)}"]))
        if "_count" in query:
            return 200, vector(str(group["requests"]))
        if 'status=~"5.."' in query:
            return 200, vector(str(group["errors"]))
        return 200, vector(str(group["requests"]))

    return answer


def test_prometheus_mode_builds_promql_per_group_and_judges(capsys, prometheus):
    stub = prometheus(
        canary_and_baseline(
            {
                "canary": {"requests": 1000.4, "errors": 80, "p50": 0.05, "p95": 0.2, "p99": 0.4},
                "baseline": {"requests": 3000, "errors": 30, "p50": 0.04, "p95": 0.15, "p99": "NaN"},
            }
        )
    )
    code, result = run_module(
        capsys,
        prometheus_url=stub.url,
        selector='job="app"',
        canary=['version="2.0.0"'],
        baseline=["http://10.0.0.11:8000/metrics", "10.0.0.12:8000"],
        window="5m",
        methods=["GET"],
    )
    assert code == 0
    evidence = result["evidence"]
    assert evidence["source"] == "prometheus"
    canary, baseline = evidence["groups"]["canary"], evidence["groups"]["baseline"]
    assert (canary["requests"], canary["errors"], canary["p50_ms"], canary["p95_ms"], canary["p99_ms"]) == (
        1000.4,
        80,
        50.0,
        200.0,
        400.0,
    )
    assert baseline["p99_ms"] is None  # NaN: no observation in the window
    assert canary["queries"]["errors"] == (
        'sum(increase(http_requests_total{job="app", version="2.0.0", path!~"/metrics|/health|/ready", '
        'method=~"GET", status=~"5.."}[5m]))'
    )
    assert baseline["queries"]["p95_ms"] == (
        'histogram_quantile(0.95, sum by (le) (increase(http_request_duration_seconds_bucket{job="app", '
        'instance=~"10\\\\.0\\\\.0\\\\.11:8000|10\\\\.0\\\\.0\\\\.12:8000", path!~"/metrics|/health|/ready", '
        'method=~"GET"}[5m])))'
    )
    assert len(stub.queries) == 12
    assert result["verdict"] == "rollback"
    assert result["reasons"] == [
        "canary error ratio 8.00% (80 of 1000.4 requests) is above the maximum of 5.00%",
        "canary error ratio 8.00% is above 2x the baseline's 1.00% = 2.00%",
        "canary p95 latency 200.0 ms is +33.3% against the baseline's 150.0 ms "
        "(allowed: +10% and at least +5 ms, i.e. up to 165.0 ms)",
    ]


def test_prometheus_with_no_traffic_holds(capsys, prometheus):
    stub = prometheus(lambda query: (200, vector()))
    code, result = run_module(capsys, prometheus_url=stub.url, canary=["app1:8000"], window="1m")
    assert code == 0
    assert result["verdict"] == "hold"
    assert result["evidence"]["groups"]["canary"]["requests"] == 0
    assert result["reasons"] == [
        "canary served 0 requests in the last 1m, fewer than min_samples 50: not enough to judge"
    ]


@pytest.mark.parametrize(
    ("status", "document", "message"),
    [
        (
            400,
            {"status": "error", "errorType": "bad_data", "error": 'invalid parameter "query": 1:27: parse error'},
            'refused the query sum(increase(http_requests_total{instance=~"app1:8000", '
            'path!~"/metrics|/health|/ready"}[1m])) (HTTP 400): bad_data: invalid parameter "query": 1:27: parse error',
        ),
        (503, b"Service Unavailable", "answered HTTP 503 with a body that is not JSON (is prometheus_url the"),
    ],
)
def test_prometheus_errors_fail_the_task_with_its_message(capsys, prometheus, status, document, message):
    stub = prometheus(lambda query: (status, document))
    code, result = run_module(capsys, prometheus_url=stub.url, canary=["app1:8000"], window="1m")
    assert code == 1
    assert message in result["msg"]
    assert stub.url in result["msg"]


def test_prometheus_unreachable_fails_the_task(capsys):
    url = closed_port_url()
    code, result = run_module(capsys, prometheus_url=url, canary=["app1:8000"], window="1m", timeout=1)
    assert code == 1
    assert result["msg"] == f"cannot reach Prometheus at {url}: connection refused"


def test_prometheus_over_https_with_the_fleet_ca_and_a_token(capsys, scripted_server, pki):
    server = scripted_server(lambda number: (200, vector("100")), tls=pki.good.server_context())
    args = {"prometheus_url": server.url, "canary": ["app1:8000"], "window": "1m", "bearer_token": "s3cret"}
    code, result = run_module(capsys, ca_path=pki.good.ca, **args)
    assert code == 0
    assert result["evidence"]["groups"]["canary"]["requests"] == 100
    assert "s3cret" not in json.dumps(result)
    code, result = run_module(capsys, ca_path=pki.other.ca, **args)
    assert code == 1
    assert "TLS verification failed: unable to get local issuer certificate" in result["msg"]


# --- the error budget --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errors", "verdict", "state", "pct"),
    [(5000, "allow", "HEALTHY", 40.0), (9100, "allow", "WARNING", 72.8), (10000, "block", "CRITICAL", 80.0)],
)
def test_error_budget_from_given_counts(capsys, errors, verdict, state, pct):
    code, result = run_module(capsys, mode="error_budget", error_budget={"requests": 12500000, "errors": errors})
    assert code == 0
    assert result["verdict"] == verdict
    budget = result["evidence"]["budget"]
    assert (budget["state"], budget["consumed_pct"], budget["budget_seconds"]) == (state, pct, 2592.0)
    assert result["evidence"]["source"] == "given"
    assert f"{pct:.1f}% of the error budget is consumed ({errors} errors in 12500000 requests over 30d" in result["msg"]


def test_error_budget_block_can_fail_the_task(capsys):
    code, result = run_module(
        capsys, mode="error_budget", error_budget={"requests": 1000, "errors": 2}, fail_on=["block"]
    )
    assert code == 1
    assert result["verdict"] == "block"
    assert result["msg"].startswith("the verdict is block, which fail_on turns into a failure: 200.0% of the error")
    assert "state EXHAUSTED" in result["msg"]


def test_error_budget_from_prometheus_over_the_slo_window(capsys, prometheus):
    stub = prometheus(lambda query: (200, vector("600" if 'status=~"5.."' in query else "1000000")))
    code, result = run_module(
        capsys,
        mode="error_budget",
        prometheus_url=stub.url,
        selector='job="app"',
        error_budget={"slo_target": 0.999, "window": "30d", "max_consumed": 0.5},
    )
    assert code == 0
    assert result["verdict"] == "block"
    assert result["evidence"]["budget"]["state"] == "WARNING"
    assert result["evidence"]["queries"] == {
        "requests": 'sum(increase(http_requests_total{job="app", path!~"/metrics|/health|/ready"}[30d]))',
        "errors": 'sum(increase(http_requests_total{job="app", path!~"/metrics|/health|/ready", status=~"5.."}[30d]))',
    }
    assert "above the 50% allowed" in result["msg"]

    stub = prometheus(lambda query: (200, vector("7" if query == "slo:errors:30d" else "20000")))
    code, result = run_module(
        capsys,
        mode="error_budget",
        prometheus_url=stub.url,
        error_budget={"requests_query": "slo:requests:30d", "errors_query": "slo:errors:30d"},
    )
    assert [query for _path, query in stub.queries] == ["slo:requests:30d", "slo:errors:30d"]
    assert (result["verdict"], result["evidence"]["budget"]["consumed_pct"]) == ("allow", 35.0)


def test_header_values_never_appear_in_the_result(capsys, scripted_server):
    server = scripted_server(lambda number: (200, b""))
    code, result = run_module(
        capsys, canary=[server.url], window=0.2, headers={"Authorization": "Bearer s3cret-scrape-token"}
    )
    assert "s3cret-scrape-token" not in json.dumps(result)
    assert result["invocation"]["module_args"]["headers"] == {"Authorization": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}
