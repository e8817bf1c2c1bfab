"""The service contract: health, version, inference, streaming and the Prometheus metrics."""

import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aistack_example_app import __version__
from aistack_example_app.settings import Settings


def samples(client, name):
    """{labels-tuple: value} of one sample name in the client's /metrics."""
    text = client.get("/metrics").text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def labels(**kwargs):
    return tuple(sorted({"version": __version__, **kwargs}.items()))


def sse_events(text):
    """[(event, data)] of a server-sent event stream."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields.get("event", "message"), fields.get("data")))
    return events


def test_health_and_version(make_client):
    client = make_client(APP_RELEASE_ID="20260101T000000-abc123")
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/version").json() == {
        "version": __version__,
        "hostname": socket.gethostname(),
        "release": "20260101T000000-abc123",
    }


def test_ready_with_no_dependency_configured(make_client):
    response = make_client().get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {}}


def test_inference_is_deterministic_and_the_same_by_get_and_post(make_client):
    client, other = make_client(), make_client()
    by_get = client.get("/v1/infer", params={"text": "hello fleet"}).json()
    by_post = other.post("/v1/infer", json={"text": "hello fleet"}).json()
    assert by_get == by_post
    assert 0 <= by_get["score"] < 1
    assert by_get["label"] == ("positive" if by_get["score"] >= 0.5 else "negative")
    assert by_get["version"] == __version__
    assert client.get("/v1/infer", params={"text": "another text"}).json()["score"] != by_get["score"]


def test_inference_rejects_bad_input(make_client):
    client = make_client()
    assert client.post("/v1/infer", json={}).status_code == 422
    assert client.get("/v1/infer").status_code == 422
    assert client.post("/v1/infer", json={"text": "x" * 10_001}).status_code == 422


def test_stream_sends_one_tick_per_interval_then_done(make_client):
    with make_client().stream("GET", "/v1/stream", params={"seconds": 0.5, "interval": 0.1}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        events = sse_events(response.read().decode())
    assert [event for event, data in events if data] == ["tick"] * 5 + ["done"]
    assert events[0][1] == '{"seq": 1, "of": 5}'
    assert events[-1][1] == f'{{"events": 5, "version": "{__version__}"}}'


def test_stream_longer_than_allowed_is_refused(make_client):
    response = make_client(APP_STREAM_MAX_SECONDS="2").get("/v1/stream", params={"seconds": 3})
    assert response.status_code == 422
    assert "APP_STREAM_MAX_SECONDS" in response.json()["detail"]


def test_metrics_count_requests_by_route_template_status_and_version(make_client):
    client = make_client()
    client.get("/health")
    client.get("/health")
    client.post("/v1/infer", json={"text": "a"})
    client.get("/v1/infer")  # 422
    client.get("/no/such/page/12345")
    client.get("/v1/stream", params={"seconds": 0.3, "interval": 0.1})

    counts = samples(client, "http_requests_total")
    assert counts[labels(method="GET", path="/health", status="200")] == 2
    assert counts[labels(method="POST", path="/v1/infer", status="200")] == 1
    assert counts[labels(method="GET", path="/v1/infer", status="422")] == 1
    # unknown paths share one series, so that scanners cannot create new ones
    assert counts[labels(method="GET", path="<unmatched>", status="404")] == 1
    assert not any("12345" in value for key in counts for name, value in key if name == "path")

    durations = samples(client, "http_request_duration_seconds_count")
    assert durations[labels(method="GET", path="/health", status="200")] == 2
    # a stream is timed to its last byte, not to its headers
    stream_seconds = samples(client, "http_request_duration_seconds_sum")
    assert stream_seconds[labels(method="GET", path="/v1/stream", status="200")] >= 0.3


def test_each_app_has_its_own_registry(make_client):
    first, second = make_client(), make_client()
    first.get("/health")
    assert samples(second, "http_requests_total")[labels(method="GET", path="/health", status="200")] == 0


def test_every_route_has_its_200_and_500_series_at_zero_before_its_first_request(make_client):
    counts = samples(make_client(), "http_requests_total")
    for method, path in [("GET", "/v1/infer"), ("POST", "/v1/infer"), ("GET", "/v1/stream"), ("GET", "/ready")]:
        for status in ("200", "500"):
            assert counts[labels(method=method, path=path, status=status)] == 0
    assert not any(dict(key)["path"].startswith("/docs") or dict(key)["method"] == "HEAD" for key in counts)
    durations = samples(make_client(), "http_request_duration_seconds_count")
    assert durations[labels(method="POST", path="/v1/infer", status="500")] == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [("APP_FAULT_ERROR_RATIO", "1.5"), ("APP_FAULT_ERROR_RATIO", "half"), ("APP_FAULT_LATENCY_MS", "-1")],
)
def test_bad_settings_fail_at_start_with_the_variable_named(name, value):
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


def test_websocket_says_hello_with_its_forwarded_headers_then_echoes(make_client):
    client = make_client()
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.7", "X-Request-ID": "ws-1"}
    with client.websocket_connect("/v1/ws", headers=headers) as ws:
        hello = ws.receive_json()
        ws.send_text("ping 1")
        assert ws.receive_text() == "ping 1"
        ws.send_text("ping 2")
        assert ws.receive_text() == "ping 2"
    assert hello["hello"] == socket.gethostname() and hello["version"] == __version__
    assert hello["headers"]["x-forwarded-proto"] == "https"
    assert hello["headers"]["x-forwarded-for"] == "192.0.2.7"
    assert hello["headers"]["x-request-id"] == "ws-1"
