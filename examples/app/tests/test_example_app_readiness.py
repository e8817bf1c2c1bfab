"""Readiness checks whichever of Redis, OpenSearch and MongoDB are configured.

Redis is the real server from Debian (package redis-server), started on 127.0.0.1 for the
test (Redis through Sentinel and over TLS: test_example_app_sentinel.py). OpenSearch and
MongoDB are only tested unreachable here: OpenSearch's positive path is proven with the
OpenSearch role's real cluster, and no MongoDB server can be had on our build machines (see
docs/development.md).
"""

import sys

import pytest


@pytest.fixture
def redis(redis_servers):
    """A real Redis on 127.0.0.1 with a password, stopped after the test."""
    return redis_servers(["--port", "{port}", "--requirepass", "s3cret"])


def test_ready_when_redis_answers(make_client, redis):
    response = make_client(APP_REDIS_URL=f"redis://:s3cret@127.0.0.1:{redis}/0").get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"
    assert response.json()["checks"]["redis"]["ok"] is True


def test_not_ready_on_wrong_redis_password(make_client, redis):
    response = make_client(APP_REDIS_URL=f"redis://:wrong@127.0.0.1:{redis}").get("/ready")
    assert response.status_code == 503
    assert "refused the credentials" in response.json()["checks"]["redis"]["error"]
    assert ":wrong@" not in response.text


def test_not_ready_when_a_configured_dependency_is_unreachable(make_client, closed_port):
    response = make_client(APP_REDIS_URL=f"redis://:topsecret@127.0.0.1:{closed_port}").get("/ready")
    assert response.status_code == 503
    check = response.json()["checks"]["redis"]
    assert check["ok"] is False
    assert f"127.0.0.1:{closed_port}" in check["error"]
    assert "topsecret" not in response.text


@pytest.mark.parametrize("variable", ["APP_OPENSEARCH_URL", "APP_MONGODB_URL"])
def test_other_dependencies_unreachable(make_client, closed_port, variable, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymongo", None)
    scheme = "http" if variable == "APP_OPENSEARCH_URL" else "mongodb"
    response = make_client(**{variable: f"{scheme}://app:pw@127.0.0.1:{closed_port}"}).get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    assert "pw@" not in response.text
