"""Make the example app importable from its source tree and share small test helpers."""

import socket
import sys
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


@pytest.fixture
def make_client():
    """A TestClient for an app configured by the given APP_* environment."""

    def make(**env):
        return TestClient(create_app(Settings.from_env(env)))

    return make


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
