"""Fault injection by environment, for canary tests: an error ratio and added latency."""

import time

from prometheus_client.parser import text_string_to_metric_families

from aistack_example_app import __version__

REQUESTS = 200


def statuses(client, count=REQUESTS):
    return [client.get("/v1/infer", params={"text": str(n)}).status_code for n in range(count)]


def test_error_ratio_is_roughly_honoured_and_repeatable_with_a_seed(make_client):
    seen = statuses(make_client(APP_FAULT_ERROR_RATIO="0.25", APP_FAULT_SEED="42"))
    assert set(seen) == {200, 500}
    assert 0.17 <= seen.count(500) / REQUESTS <= 0.33
    # the same seed fails the same requests
    assert statuses(make_client(APP_FAULT_ERROR_RATIO="0.25", APP_FAULT_SEED="42"), 50) == seen[:50]


def test_no_faults_unless_asked_for(make_client):
    assert set(statuses(make_client(), 100)) == {200}


def test_faults_hit_inference_only_and_show_in_the_metrics(make_client):
    client = make_client(APP_FAULT_ERROR_RATIO="1")
    response = client.post("/v1/infer", json={"text": "x"})
    assert response.status_code == 500
    assert "injected fault" in response.json()["detail"]
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(client.get("/metrics").text)}
    failed = [
        sample
        for sample in families["http_requests"].samples
        if sample.labels == {"method": "POST", "path": "/v1/infer", "status": "500", "version": __version__}
    ]
    assert [sample.value for sample in failed] == [1.0]


def test_added_latency_delays_inference_only(make_client):
    client = make_client(APP_FAULT_LATENCY_MS="500")
    started = time.perf_counter()
    assert client.get("/v1/infer", params={"text": "slow"}).status_code == 200
    assert time.perf_counter() - started >= 0.5
    started = time.perf_counter()
    assert client.get("/health").status_code == 200
    assert time.perf_counter() - started < 0.5
