"""Readiness checks whichever of Redis, OpenSearch and MongoDB are configured, for real."""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture
def opensearch():
    """A stand-in for OpenSearch's /_cluster/health with a settable cluster status."""
    state = {"status": "green"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.path == "/_cluster/health"
            body = json.dumps({"status": state["status"]} if ok else {"error": "no such path"}).encode()
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


REDIS_REPLIES = {b"PING\r\n": b"+PONG\r\n", b"s3cret\r\n": b"+OK\r\n", b"wrong\r\n": b"-WRONGPASS invalid password\r\n"}


def test_ready_when_every_configured_dependency_answers(make_client, line_server, opensearch, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymongo", None)  # the stand-in speaks TCP, not the MongoDB protocol
    redis = line_server(REDIS_REPLIES.get)
    mongodb = line_server(lambda line: None)
    response = make_client(
        APP_REDIS_URL=f"redis://:s3cret@127.0.0.1:{redis.port}/0",
        APP_OPENSEARCH_URL=opensearch[1],
        APP_MONGODB_URL=f"mongodb://app:pw@127.0.0.1:{mongodb.port}/app?replicaSet=rs0",
    ).get("/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "redis": True,
        "opensearch": True,
        "mongodb": True,
    }
    # the password went to Redis as an AUTH command before PING
    assert redis.received == [b"*2\r\n", b"$4\r\n", b"AUTH\r\n", b"$6\r\n", b"s3cret\r\n"] + [
        b"*1\r\n",
        b"$4\r\n",
        b"PING\r\n",
    ]


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
    response = make_client(**{variable: f"{scheme}://127.0.0.1:{closed_port}"}).get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"


def test_not_ready_on_wrong_redis_password(make_client, line_server):
    redis = line_server(REDIS_REPLIES.get)
    response = make_client(APP_REDIS_URL=f"redis://:wrong@127.0.0.1:{redis.port}").get("/ready")
    assert response.status_code == 503
    assert "refused the credentials" in response.json()["checks"]["redis"]["error"]


def test_not_ready_when_the_opensearch_cluster_is_red(make_client, opensearch):
    state, url = opensearch
    client = make_client(APP_OPENSEARCH_URL=url)
    assert client.get("/ready").status_code == 200
    state["status"] = "red"
    response = client.get("/ready")
    assert response.status_code == 503
    assert "cluster status is red" in response.json()["checks"]["opensearch"]["error"]
