"""Make the example app importable from its source tree and share small test helpers."""

import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

with warnings.catch_warnings():
    # Starlette prefers httpx2 for its TestClient; httpx (installed) works the same here.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from aistack_example_app.main import create_app  # noqa: E402
from aistack_example_app.settings import Settings  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def make_client():
    """A TestClient for an app configured by the given APP_* environment."""

    def make(**env):
        return TestClient(create_app(Settings.from_env(env)))

    return make


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    return _free_port()


@pytest.fixture
def redis_server_binary():
    """Debian's redis-server: its absence skips the test, saying why, and fails it in CI."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        pytest.skip("needs redis-server (Debian package redis-server)")
    return binary


@pytest.fixture
def redis_servers(redis_server_binary, tmp_path):
    """start(args, config=None) -> port: a real redis-server (a Sentinel when config is given,
    written into tmp_path) on a free port of 127.0.0.1; ``{port}`` in args and config is
    replaced by that port. Every server started is stopped after the test."""
    started = []

    def start(args, config=None):
        port = _free_port()
        log = tmp_path / f"redis-{port}.log"
        argv = [redis_server_binary]
        if config is not None:
            conf = tmp_path / f"sentinel-{port}.conf"
            conf.write_text(config.replace("{port}", str(port)) + f"\ndir {tmp_path}\nlogfile {log}\n")
            argv += [str(conf), "--sentinel"]
        else:
            argv += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
            argv += ["--logfile", str(log)] + [arg.replace("{port}", str(port)) for arg in args]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return port
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    tail = log.read_text()[-2000:] if log.exists() else ""
                    pytest.fail(f"redis-server did not start on {port}:\n{tail}")
                time.sleep(0.05)

    yield start
    for proc in started:
        proc.terminate()
    for proc in started:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
