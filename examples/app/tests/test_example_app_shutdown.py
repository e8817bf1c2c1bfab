"""Graceful stop under real uvicorn: a stream running when SIGTERM arrives still completes."""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_uvicorn(port, *options):
    argv = [sys.executable, "-m", "uvicorn", "aistack_example_app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [*argv, "--timeout-graceful-shutdown", "10", *options],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"uvicorn did not answer /health:\n{proc.communicate()[0]}")


def stream_through_sigterm(proc, port):
    """Start an SSE stream, send SIGTERM after its first event, return every event line read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    conn.request("GET", "/v1/stream?seconds=2&interval=0.25")
    response = conn.getresponse()
    assert response.status == 200
    events = [response.readline()]
    assert events[0].startswith(b"id: 1"), events
    proc.send_signal(signal.SIGTERM)
    events += response.read().splitlines(keepends=True)
    return [line.decode().strip() for line in events if line.startswith(b"event: ")]


@pytest.mark.parametrize(
    ("options", "exit_status"),
    [
        # the production shape: the parent process stops its workers and exits 0
        (["--workers", "2"], 0),
        # a lone uvicorn process re-raises the signal after its graceful stop
        ([], -signal.SIGTERM),
    ],
    ids=["workers", "single-process"],
)
def test_sigterm_mid_stream_lets_the_stream_finish(options, exit_status):
    port = free_port()
    proc = start_uvicorn(port, *options)
    try:
        events = stream_through_sigterm(proc, port)
        assert proc.wait(timeout=20) == exit_status
    finally:
        if proc.poll() is None:
            proc.kill()
    log = proc.communicate()[0]
    # the stream began before the signal and still delivered all 8 ticks and its "done"
    assert events == ["event: tick"] * 8 + ["event: done"], log
    assert "Shutting down" in log
    assert "Cancel" not in log  # nothing was cut off by the graceful-shutdown timeout
