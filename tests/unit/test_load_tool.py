"""The load tool (tests/perf/load/load.py) drives the REAL example app with wrk and counts exactly.

Each test starts the example app under uvicorn in its own process on a free 127.0.0.1 port,
so a test can kill it (SIGKILL) in the middle of a stream.
"""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import ROOT
from tests.unit.conftest import debian_tool, free_port

LOAD = ROOT / "tests" / "perf" / "load" / "load.py"
APP_SRC = ROOT / "examples" / "app" / "src"
APP_VERSION = re.search(r'__version__ = "([^"]+)"', (APP_SRC / "aistack_example_app" / "__init__.py").read_text())[1]


@pytest.fixture
def wrk():
    """wrk must be there in CI (.ci/run installs it); elsewhere its absence skips."""
    debian_tool("wrk", "wrk")


@pytest.fixture
def app(tmp_path):
    """start(**env) -> (base URL, Popen): the example app under uvicorn, stopped after the test."""
    pytest.importorskip("uvicorn")
    started = []

    def start(**env):
        port = free_port()
        log = (tmp_path / f"app-{port}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "aistack_example_app.main:app"]
            + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
            env={**os.environ, "PYTHONPATH": str(APP_SRC), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append((proc, log))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"the example app exited {proc.returncode}: {(tmp_path / log.name).read_text()}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as answer:  # noqa: S310 (http://127.0.0.1)
                    if answer.status == 200:
                        return url, proc
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        pytest.fail("the example app did not answer /health within 20 s")

    yield start
    for proc, log in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        log.close()


def load_argv(url, output, *extra):
    return [sys.executable, str(LOAD), "--url", url, "--output", str(output), *map(str, extra)]


def run_load(url, output, *extra, timeout=60):
    proc = subprocess.run(load_argv(url, output, *extra), capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(output.read_text())
    assert json.loads(proc.stdout) == summary  # what is printed is what is written
    return summary


# --- against the real app ------------------------------------------------------------------


def test_clean_run_counts_every_answer_and_no_failure(wrk, app, tmp_path):
    url, _proc = app()
    duration, rate = 4, 50
    summary = run_load(
        url, tmp_path / "summary.json", "--duration", duration, "--rate", rate, "--streams", 1, "--stream-seconds", 2
    )
    totals, mixed, streams = summary["totals"], summary["mixed"], summary["streams"]

    assert totals["failed"] == 0, totals
    assert totals["resets"] == 0 and totals["timeouts"] == 0 and totals["connect_errors"] == 0, totals
    assert totals["truncated_streams"] == 0 and totals["lost_requests"] == 0, totals

    # Paced: about rate * duration requests, every one answered 2xx, the three kinds in turn.
    assert abs(mixed["requests"] - rate * duration) <= 0.4 * rate * duration, mixed
    assert mixed["status"]["2xx"] == mixed["requests"]
    sent = mixed["sent"]
    assert max(sent.values()) - min(sent.values()) <= mixed["connections"], sent
    assert sum(sent.values()) == mixed["requests"] + mixed["in_flight"]

    # GET /version answers name the app's version, one count per answer.
    assert mixed["versions"] == {APP_VERSION: mixed["by_kind"]["version"]["2xx"]}
    assert mixed["versions"][APP_VERSION] > 0

    # The 2 s streams: at least one complete with all its events, none short.
    assert streams["expected_events"] == 4
    assert streams["streams_completed"] >= 1 and streams["streams_truncated"] == 0, streams
    assert streams["ticks"] == streams["streams_completed"] * 4
    assert streams["versions"] == {APP_VERSION: streams["streams_completed"]}
    assert 2000 <= streams["latency_ms"]["p50"] < 3000
    assert summary["latency_ms"] == mixed["latency_ms"] and 0 < mixed["latency_ms"]["p99"] < 1000


def test_sigint_ends_the_run_early_with_a_summary(wrk, app, tmp_path):
    url, _proc = app()
    output = tmp_path / "summary.json"
    argv = load_argv(url, output, "--duration", 120, "--rate", 50, "--streams", 1, "--stream-seconds", 1)
    load = subprocess.Popen(argv)
    time.sleep(3)
    load.send_signal(signal.SIGINT)
    assert load.wait(timeout=15) == 0
    summary = json.loads(output.read_text())
    assert summary["duration_s"] < 10, summary["duration_s"]
    assert summary["mixed"]["requests"] > 50 and summary["totals"]["failed"] == 0, summary["totals"]


def test_injected_errors_are_counted_as_failed_5xx(wrk, app, tmp_path):
    url, _proc = app(APP_FAULT_ERROR_RATIO="0.5", APP_FAULT_SEED="7")
    summary = run_load(url, tmp_path / "summary.json", "--duration", 3, "--rate", 60, "--streams", 0)
    totals, mixed = summary["totals"], summary["mixed"]

    fives = mixed["status"]["5xx"]
    assert fives > 0 and totals["failed"] == fives, totals
    assert mixed["errors"]["status"] == fives  # wrk's own count of status > 399: the same answers
    assert totals["resets"] == 0 and totals["connect_errors"] == 0
    # Only inference fails (about half of it); /version is never faulted.
    assert mixed["by_kind"]["version"]["5xx"] == 0
    infer = [mixed["by_kind"][kind] for kind in ("infer_get", "infer_post")]
    answered = sum(kind["2xx"] + kind["5xx"] for kind in infer)
    assert 0.25 <= fives / answered <= 0.75, infer
    assert summary["streams"]["connections"] == 0 and summary["streams"]["requests"] == 0


def test_app_killed_mid_stream_is_never_a_completed_stream(wrk, app, tmp_path):
    url, app_proc = app()
    output = tmp_path / "summary.json"
    argv = load_argv(url, output, "--duration", 4, "--rate", 20, "--streams", 1, "--stream-seconds", 3)
    load = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # the first 3 s stream is half way
        app_proc.kill()
        stdout, stderr = load.communicate(timeout=60)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    assert load.returncode == 0, stderr
    summary = json.loads(output.read_text())
    totals, streams = summary["totals"], summary["streams"]

    assert streams["streams_completed"] == 0 and totals["completed_streams"] == 0, streams
    cut = streams["streams_truncated"] + streams["streams_broken"] + streams["errors"]["read"]
    assert cut >= 1, streams
    assert totals["truncated_streams"] + totals["resets"] + totals["failed"] > 0, totals
    # Before the kill the mixed traffic was answered; after it, the attempts fail.
    assert summary["mixed"]["status"]["2xx"] > 0 and totals["failed"] > 0
    assert json.loads(stdout) == summary


class ShortStreams(ThreadingHTTPServer):
    """A service whose streams end cleanly but short: no `done`, or a `done` with too few events."""

    daemon_threads = True
    # wrk opens every connection at once (mixed and streams: 6 here); with the default
    # backlog of 5 a SYN can be dropped and retried after 1 s, past the end of the run.
    request_queue_size = 64

    def __init__(self):
        self.streams = 0
        lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, Content-Length: a clean end of body

            def answer(self, body, content_type="application/json"):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if not self.path.startswith("/v1/stream"):
                    self.answer(b'{"version":"9.9.9-short","hostname":"fake"}')
                    return
                with lock:
                    owner.streams += 1
                    number = owner.streams
                time.sleep(0.05)
                body = 'id: 1\nevent: tick\ndata: {"seq": 1, "of": 2}\n\n'
                if number % 2 == 0:  # a `done` that counts one event where two were due
                    body += 'event: done\ndata: {"events": 1, "version": "9.9.9-short"}\n\n'
                self.answer(body.encode(), "text/event-stream")

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.answer(b'{"score":0.5,"label":"positive","version":"9.9.9-short"}')

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request, client_address):
        pass  # wrk drops its connections at the end of the run: a broken pipe here is expected


def test_streams_that_end_short_are_truncated_not_completed(wrk, tmp_path):
    server = ShortStreams()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        summary = run_load(
            server.url, tmp_path / "summary.json", "--duration", 1, "--rate", 5, "--streams", 1, "--stream-seconds", 1
        )
    finally:
        server.shutdown()
        server.server_close()
    streams, totals = summary["streams"], summary["totals"]

    assert streams["expected_events"] == 2
    assert streams["requests"] >= 2 and streams["status"]["2xx"] == streams["requests"]
    assert streams["streams_completed"] == 0
    assert streams["streams_truncated"] == streams["requests"], streams
    assert totals["truncated_streams"] >= streams["streams_truncated"]
    # Only the `done` events name a version: every second stream.
    assert streams["versions"] == {"9.9.9-short": streams["requests"] // 2}
    assert summary["mixed"]["versions"] == {"9.9.9-short": summary["mixed"]["by_kind"]["version"]["2xx"]}


# --- the run cannot happen: a clean non-zero exit and one sentence ---------------------------


def test_unreachable_target_exits_non_zero_with_a_message(wrk, tmp_path):
    output = tmp_path / "summary.json"
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = subprocess.run(
        load_argv(url, output, "--duration", 2), capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 4
    assert "unable to connect" in proc.stderr and "Traceback" not in proc.stderr
    assert not output.exists() and proc.stdout == ""

    proc = subprocess.run(
        load_argv(url, output, "--wait-ready", 1), capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 4 and "did not answer 200 within 1 s" in proc.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--url", "ftp://127.0.0.1:21"], 2, "--url must be http(s)://"),
        (["--url", "http://127.0.0.1:1", "--duration", "3601"], 2, "--duration must be between 1 and 3600"),
        (["--url", "http://127.0.0.1:1", "--rate", "5001"], 2, "--rate must be between 0.1 and 5000"),
        (["--url", "http://127.0.0.1:1", "--rate", "nan"], 2, "--rate must be between"),
        (["--url", "http://127.0.0.1:1", "--stream-seconds", "301"], 2, "--stream-seconds must be between"),
        # Refused before anything is sent (--wrk points nowhere, so even a regression sends nothing).
        (["--url", "http://192.0.2.1:8080", "--wrk", "/nonexistent/wrk"], 2, "pass --allow-remote"),
        (["--url", "http://127.0.0.1:1", "--wrk", "/nonexistent/wrk"], 3, "wrk not found"),
    ],
)
def test_bad_arguments_are_refused_before_any_traffic(tmp_path, args, code, message):
    proc = subprocess.run([sys.executable, str(LOAD), *args], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


# --- the arithmetic ------------------------------------------------------------------------


def load_module():
    spec = importlib.util.spec_from_file_location("aistack_load_tool", LOAD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_failed_counts_each_exchange_once():
    load = load_module()
    part = {
        "status": {"2xx": 90, "3xx": 1, "4xx": 2, "5xx": 3, "other": 0},
        # wrk: status = 4xx + 5xx; timeout = every slow answer (one of them a slow 5xx).
        "errors": {"connect": 4, "read": 5, "write": 6, "status": 5, "timeout": 3},
        "slow_ok": 2,
    }
    assert load.failed_count(part) == 2 + 3 + 2 + 4 + 5 + 6
    assert load.expected_events(12, 0.5) == 24 and load.expected_events(0.1, 0.5) == 1
    assert load.number_text(12.0) == "12" and load.number_text(0.5) == "0.5"


def test_close_sends_one_request_per_connection(wrk, app, tmp_path):
    url, _proc = app()
    summary = run_load(
        url, tmp_path / "summary.json", "--close", "--duration", 3, "--rate", 20, "--streams", 1, "--stream-seconds", 1
    )
    assert summary["totals"]["failed"] == 0 and summary["mixed"]["status"]["2xx"] > 20, summary["totals"]
    command = load_module().wrk_command(
        "wrk", "mixed.lua", url, connections=1, duration=1, timeout_s=1, host_header=None, close=True, script_args=[]
    )
    assert command[command.index("-H") + 1] == "Connection: close"
