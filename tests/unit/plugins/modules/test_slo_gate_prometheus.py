"""slo_gate against a REAL Prometheus (the Debian `prometheus` binary) that scrapes three real
example apps: a stable one, a good canary and a bad canary (half its inference requests fail).

The stubbed query API in test_slo_gate.py checks how the queries are built; this checks that real
Prometheus accepts them (PromQL syntax, the escaped instance regex, histogram_quantile over the
app's buckets) and that the numbers it returns are the traffic that was sent.

Prometheus' increase() extrapolates to the edges of the window (by at most 1.1 scrape intervals
at each end: up to about 10 % of a 12 s window here), so counts are compared within 15 %. They
come out right only because the app creates its series at zero when it starts: otherwise the bad
canary's series were born with their first requests, and Prometheus missed those (this test
found that).

The deploy procedures' error-budget preflight (playbooks/tasks/error_budget.yml, with the
procedures' argument spec) runs here too, by the real ansible-playbook against this Prometheus.
"""

import json
import math
import subprocess
import sys
import threading
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.unit.conftest import debian_tool, free_port
from tests.unit.plugins.modules.test_slo_gate import App, Load, run_module
from tests.unit.test_base_tasks import ANSIBLE_PLAYBOOK, playbook_env

REQUESTS = 300  # inference requests sent to each app inside the window
SCRAPE_MS = 500  # between scrapes
SCRAPE = SCRAPE_MS / 1000


def query(url, promql):
    """The result list of an instant query."""
    address = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(address, timeout=5) as answer:  # noqa: S310 (http://127.0.0.1)
        return json.load(answer)["data"]["result"]


def wait_for(what, check, seconds=30, process=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: it exited with {process.returncode}")
        try:
            if check():
                return
        except (urllib.error.URLError, OSError, KeyError):
            pass
        time.sleep(0.2)
    pytest.fail(f"{what} within {seconds} s")


def start_prometheus(directory, targets):
    """Prometheus on a free 127.0.0.1 port scraping targets {track: host:port} every SCRAPE s."""
    binary = debian_tool("prometheus", "prometheus")
    static = "".join(
        f"      - targets: ['{target}']\n        labels: {{track: {track}}}\n" for track, target in targets.items()
    )
    config = directory / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_MS}ms\n  scrape_timeout: {SCRAPE_MS * 4 // 5}ms\n"
        f"scrape_configs:\n  - job_name: app\n    static_configs:\n{static}"
    )
    port = free_port()
    log = (directory / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            "Prometheus did not scrape every app",
            lambda: sum(float(item["value"][1]) for item in query(url, 'up{job="app"}')) == len(targets),
            process=process,
        )
    except BaseException:
        process.kill()
        process.wait(10)
        raise
    return url, process


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Three apps scraped by Prometheus; REQUESTS inference requests sent to each inside the window.

    window() gives the seconds from just before the traffic until now, the window to query.
    """
    apps = {
        "stable": App(),
        "good": App(),
        "bad": App(APP_FAULT_ERROR_RATIO="0.5", APP_FAULT_SEED="11"),
    }
    process = None
    try:
        url, process = start_prometheus(
            tmp_path_factory.mktemp("prometheus"), {track: f"127.0.0.1:{app.port}" for track, app in apps.items()}
        )
        # The app creates its 200 and 500 series at zero when it starts, so Prometheus has them
        # before the first request (a series born with its first request would lose it).
        wait_for(
            "Prometheus did not have the apps' inference series",
            lambda: len(query(url, 'http_requests_total{job="app", path="/v1/infer"}')) == 12,
        )
        time.sleep(2 * SCRAPE)
        start = time.monotonic()
        time.sleep(4 * SCRAPE)  # flat samples at the start of the window
        started = threading.Event()
        started.set()
        loads = {track: Load(app, REQUESTS, started, threads=4) for track, app in apps.items()}
        statuses = {track: load.join() for track, load in loads.items()}
        time.sleep(16 * SCRAPE)  # scrapes after the last request: a window of about 12 s
        yield types.SimpleNamespace(
            url=url,
            apps=apps,
            statuses=statuses,
            window=lambda: f"{math.ceil(time.monotonic() - start)}s",
        )
    finally:
        if process is not None:
            process.terminate()
            process.wait(20)
        for app in apps.values():
            app.stop()


def test_the_traffic_was_sent_as_planned(fleet):
    assert fleet.statuses["stable"] == {200: REQUESTS}
    assert fleet.statuses["bad"][500] > 0.3 * REQUESTS


def test_a_bad_canary_is_rolled_back_on_real_prometheus_numbers(capsys, fleet):
    bad = fleet.statuses["bad"]
    code, result = run_module(
        capsys,
        prometheus_url=fleet.url,
        selector='job="app"',
        canary=[fleet.apps["bad"].url],  # an instance: matched with an escaped regex
        baseline=['track="stable"'],  # a label matcher
        window=fleet.window(),
    )
    assert code == 0, result
    assert result["verdict"] == "rollback", result
    canary, baseline = result["evidence"]["groups"]["canary"], result["evidence"]["groups"]["baseline"]
    assert result["evidence"]["source"] == "prometheus"
    assert canary["requests"] == pytest.approx(REQUESTS, rel=0.15), canary
    assert canary["errors"] == pytest.approx(bad[500], rel=0.15), canary
    assert baseline["requests"] == pytest.approx(REQUESTS, rel=0.15) and baseline["errors"] == 0, baseline
    assert any(reason.startswith("canary error ratio") for reason in result["reasons"]), result["reasons"]
    for group in (canary, baseline):
        assert 0 < group["p50_ms"] <= group["p95_ms"] <= group["p99_ms"] < 500, group


def test_a_good_canary_is_promoted_on_real_prometheus_numbers(capsys, fleet):
    code, result = run_module(
        capsys,
        prometheus_url=fleet.url,
        selector='job="app"',
        canary=['track="good"'],
        baseline=['track="stable"'],
        window=fleet.window(),
        # Both apps answer in about a millisecond on this host; a latency rule in milliseconds
        # would judge scheduling noise.
        min_latency_regression_ms=50,
    )
    assert code == 0, result
    assert result["verdict"] == "promote", result
    canary = result["evidence"]["groups"]["canary"]
    assert canary["requests"] == pytest.approx(REQUESTS, rel=0.15) and canary["errors"] == 0, canary


@pytest.mark.parametrize(
    ("track", "verdict", "state"),
    [("bad", "block", "EXHAUSTED"), ("stable", "allow", "HEALTHY")],
)
def test_the_error_budget_from_real_prometheus(capsys, fleet, track, verdict, state):
    code, result = run_module(
        capsys,
        mode="error_budget",
        prometheus_url=fleet.url,
        selector='job="app"',
        error_budget={"slo_target": 0.99, "window": fleet.window(), "targets": [f'track="{track}"']},
    )
    assert code == 0, result
    assert (result["verdict"], result["evidence"]["budget"]["state"]) == (verdict, state), result


ROOT = Path(__file__).resolve().parents[4]
PROCEDURE = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: The procedures' preflight check of their variables' types
      ansible.builtin.validate_argument_spec:
        argument_spec: >-
          {{{{ (lookup('ansible.builtin.file', '{specs}') | from_yaml).argument_specs.deploy_rolling.options }}}}
    - name: The procedures' error-budget check
      ansible.builtin.include_tasks: {tasks}
    - name: Past the preflight
      ansible.builtin.debug: {{msg: went on}}
"""


def run_procedure_preflight(workdir, budget):
    """The deploy procedures' preflight (argument spec, then playbooks/tasks/error_budget.yml) with
    deploy_error_budget=budget, by the real ansible-playbook: (return code, output)."""
    (workdir / "playbook.yml").write_text(
        PROCEDURE.format(
            specs=ROOT / "playbooks" / "vars" / "argument_specs.yml",
            tasks=ROOT / "playbooks" / "tasks" / "error_budget.yml",
        )
    )
    argv = [
        str(ANSIBLE_PLAYBOOK),
        "-i",
        "localhost,",
        "-e",
        f"ansible_connection=local ansible_python_interpreter={sys.executable}",
        "-e",
        json.dumps({"deploy_error_budget": budget}),
        "playbook.yml",
    ]
    env = playbook_env(workdir)
    proc = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize(("track", "refused"), [("bad", True), ("stable", False)])
def test_the_procedures_error_budget_in_its_documented_form_on_real_prometheus(tmp_path, fleet, track, refused):
    """docs/procedures.md's form (prometheus_url and selector beside the policy) was refused with
    "Unsupported parameters ... error_budget.prometheus_url"; it reaches Prometheus now."""
    budget = {
        "prometheus_url": fleet.url,
        "selector": 'job="app"',
        "slo_target": 0.99,
        "window": fleet.window(),
        "targets": [f'track="{track}"'],
    }
    code, output = run_procedure_preflight(tmp_path, budget)
    assert "Unsupported parameters" not in output, output
    if refused:
        assert code != 0 and "refused before touching any host, the error budget blocks it" in output, output
        assert "went on" not in output
    else:
        assert code == 0 and "went on" in output, output


def test_a_mistyped_error_budget_option_is_refused_by_the_procedures_preflight(tmp_path):
    code, output = run_procedure_preflight(tmp_path, {"prometheus_uri": "http://127.0.0.1:9", "slo_target": 0.99})
    assert code != 0 and "prometheus_uri" in output, output
    assert "error-budget check" not in output, output  # refused by the argument spec, before slo_gate
