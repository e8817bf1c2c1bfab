"""http_probe against real servers on 127.0.0.1: consecutive successes, deadlines, JSON, TLS."""

import socket
import time

import pytest

from ansible_collections.aistack.fleet.plugins.module_utils.http_probe import (
    JsonAssertion,
    Policy,
    ProbeConfigError,
    Target,
    probe_once,
    probe_targets,
    summarize,
    tls_context,
)

FAST = {"interval": 0.05, "timeout": 2}


def always(status, body=None):
    return lambda number: (status, body if body is not None else {"status": status})


def test_healthy_targets_pass_after_exactly_n_successes(example_app):
    base = example_app()
    targets = [
        Target(f"{base}/health"),
        Target(f"{base}/ready", name="ready", assertions=[JsonAssertion("status", "ready")]),
        Target(f"{base}/version", assertions=[JsonAssertion("version && hostname")]),
    ]
    policy = Policy(successes=3, deadline=10, **FAST)
    reports = probe_targets(targets, policy)
    assert [report["passed"] for report in reports] == [True, True, True]
    assert [report["name"] for report in reports] == [f"{base}/health", "ready", f"{base}/version"]
    for report in reports:
        assert report["attempts"] == 3
        assert report["consecutive_successes"] == 3
        assert report["last_status"] == 200
        assert report["last_error"] is None
        assert report["latency_ms"] > 0
    assert summarize(reports, policy) == "all 3 targets answered as expected 3 times in a row"


def test_a_503_target_fails_at_the_deadline_and_is_named(scripted_server, example_app):
    broken = scripted_server(always(503))
    healthy = example_app()
    policy = Policy(successes=2, deadline=1.0, **FAST)
    started = time.monotonic()
    reports = probe_targets([Target(f"{healthy}/health", name="app1"), Target(broken.url, name="app2")], policy)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 6
    assert reports[0]["passed"] is True
    assert reports[0]["attempts"] == 2  # a target that passed is not probed any more
    failed = reports[1]
    assert failed["passed"] is False
    assert failed["last_status"] == 503
    assert failed["last_error"] == "HTTP 503, expected 200"
    assert failed["attempts"] == broken.requests >= 3
    message = summarize(reports, policy)
    assert message.startswith("1 of 2 targets did not answer as expected 2 times in a row within 1s: ")
    assert f"app2 ({broken.url}): HTTP 503, expected 200" in message
    assert "app1" not in message


def test_a_target_that_recovers_passes_after_n_successes_in_a_row(scripted_server):
    recovering = scripted_server(lambda number: (200, {}) if number > 4 else (503, {}))
    [report] = probe_targets([Target(recovering.url)], Policy(successes=3, deadline=5, **FAST))
    assert report["passed"] is True
    assert report["attempts"] == 7


def test_a_flapping_target_never_gets_n_successes_in_a_row(scripted_server):
    flapping = scripted_server(lambda number: (200, {}) if number % 2 else (503, {}))
    policy = Policy(successes=2, deadline=1.5, **FAST)
    [report] = probe_targets([Target(flapping.url, name="flappy")], policy)
    assert report["passed"] is False
    assert report["attempts"] == flapping.requests >= 4  # it answered well twice or more, never twice in a row
    assert report["consecutive_successes"] <= 1
    assert "flappy" in summarize([report], policy)
    # one good answer is enough when that is what is asked for
    [report] = probe_targets([Target(flapping.url)], Policy(successes=1, deadline=2, **FAST))
    assert report["passed"] is True


def test_json_assertion_failures_report_the_actual_value(example_app):
    base = example_app(redis_url=f"redis://127.0.0.1:{closed_port()}", ready_timeout=0.5)
    target = Target(
        f"{base}/ready",
        name="not-ready",
        status_codes=[200, 503],
        assertions=[JsonAssertion("checks.redis.ok"), JsonAssertion("status", "ready")],
    )
    policy = Policy(successes=1, deadline=0.3, **FAST)
    [report] = probe_targets([target], policy)
    assert report["passed"] is False
    assert report["last_status"] == 503
    assert report["last_error"] == "JSON checks.redis.ok is false, expected a true value"
    [report] = probe_targets([Target(target.url, status_codes=[503], assertions=target.assertions[1:])], policy)
    assert report["last_error"] == 'JSON status is "not ready", expected "ready"'
    assert 'JSON status is "not ready", expected "ready"' in summarize([report], policy)


def test_values_other_than_strings_and_a_body_that_is_not_json(scripted_server):
    server = scripted_server(always(200, {"members": [1, 2], "ok": True}))
    result = probe_once(Target(server.url, assertions=[JsonAssertion("length(members)", 3)]), timeout=2)
    assert result["error"] == "JSON length(members) is 2, expected 3"
    assert probe_once(Target(server.url, assertions=[JsonAssertion("ok", True)]), timeout=2)["ok"] is True
    text = scripted_server(always(200, b"<html>maintenance</html>"))
    assert probe_once(Target(text.url), timeout=2)["ok"] is True  # no assertions: the status decides
    result = probe_once(Target(text.url, assertions=[JsonAssertion("ok")]), timeout=2)
    assert result["error"] == "HTTP 200 but the body is not JSON"


def test_network_failures_are_described_in_a_few_words():
    refused = probe_once(Target(f"http://127.0.0.1:{closed_port()}/"), timeout=1)
    assert refused == {"ok": False, "status": None, "error": "connection refused", "latency_ms": refused["latency_ms"]}
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        result = probe_once(Target(f"http://127.0.0.1:{silent.getsockname()[1]}/"), timeout=0.3)
    assert result["error"] == "timed out after 0.3s"
    assert result["latency_ms"] >= 300


def test_targets_are_probed_concurrently_and_the_summary_stays_short(scripted_server):
    server = scripted_server(always(503))
    targets = [Target(f"{server.url}/{number}", name=f"app{number}") for number in range(1, 13)]
    policy = Policy(successes=1, deadline=1, **FAST)
    started = time.monotonic()
    reports = probe_targets(targets, policy)
    # twelve targets of one second each: one after the other would take twelve
    assert time.monotonic() - started < 6
    assert all(report["attempts"] >= 2 for report in reports)
    message = summarize(reports, policy)
    assert message.startswith("12 of 12 targets did not answer as expected once within 1s: app1 (")
    assert "app10 (" in message and "app11" not in message
    assert message.endswith("; and 2 more (see targets)")


def test_tls_with_the_right_ca_bundle_passes_and_with_the_wrong_one_fails(scripted_server, pki):
    server = scripted_server(always(200, {"status": "ok"}), tls=pki.good.server_context())
    target = Target(f"{server.url}/health")
    assert probe_once(target, 2, tls_context(ca_path=pki.good.ca))["ok"] is True
    wrong = probe_once(target, 2, tls_context(ca_path=pki.other.ca))
    assert wrong["ok"] is False
    assert wrong["status"] is None
    assert wrong["error"] == "TLS verification failed: unable to get local issuer certificate"
    assert probe_once(target, 2, tls_context(validate_certs=False, ca_path=pki.other.ca))["ok"] is True


def test_tls_client_certificate(scripted_server, pki):
    server = scripted_server(always(200), tls=pki.good.server_context(require_client_cert=True))
    target = Target(server.url)
    with_cert = tls_context(ca_path=pki.good.ca, client_cert=pki.good.client_cert, client_key=pki.good.client_key)
    assert probe_once(target, 2, with_cert)["ok"] is True
    without = probe_once(target, 2, tls_context(ca_path=pki.good.ca))
    assert without["ok"] is False
    # TLS 1.3 sends the refusal after the handshake: it shows up as an alert or a cut connection
    assert without["error"].startswith(("TLS error: ", "Connection reset")), without
    assert "_ssl.c" not in without["error"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Target("ftp://127.0.0.1/"), "is not an http:// or https:// URL"),
        (lambda: Target("http:///ready"), "is not an http:// or https:// URL"),
        (lambda: Target("http://127.0.0.1:99999/"), "has an invalid port"),
        (lambda: JsonAssertion("status ==="), "invalid JMESPath expression"),
        (lambda: tls_context(ca_path="/nonexistent/ca.pem"), "cannot load the TLS material"),
    ],
)
def test_settings_that_cannot_work_are_refused_up_front(make, message):
    with pytest.raises(ProbeConfigError, match=message):
        make()


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
