"""The health_gate module, run as Ansible runs it, against real servers on 127.0.0.1."""

import json
import time

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.aistack.fleet.plugins.modules import health_gate

FAST = {"interval": 0.05, "timeout": 2}


def run_module(capsys, check_mode=False, **args):
    """main() with these arguments: (exit code, the JSON result Ansible would receive)."""
    if check_mode:
        args["_ansible_check_mode"] = True
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        health_gate.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def healthy(example_app):
    return example_app()


@pytest.fixture
def unavailable(scripted_server):
    return scripted_server(lambda number: (503, {"status": "starting"}))


def test_passes_on_healthy_targets(capsys, healthy):
    code, result = run_module(
        capsys,
        targets=[
            {"name": "app1 health", "url": f"{healthy}/health"},
            {"name": "app1 ready", "url": f"{healthy}/ready", "json_assertions": [{"path": "status == 'ready'"}]},
        ],
        json_assertions=[{"path": "status", "equals": "ok"}],
        successes=2,
        deadline=10,
        **FAST,
    )
    assert code == 0
    assert result["changed"] is False
    assert result["passed"] is True
    assert not result.get("failed")
    assert result["msg"] == "all 2 targets answered as expected 2 times in a row"
    assert [(t["name"], t["passed"], t["attempts"], t["last_status"]) for t in result["targets"]] == [
        ("app1 health", True, 2, 200),
        ("app1 ready", True, 2, 200),
    ]


def test_gate_wide_json_assertions_apply_to_targets_without_their_own(capsys, healthy):
    code, result = run_module(
        capsys,
        targets=[
            {"name": "app1 health", "url": f"{healthy}/health"},
            {"name": "app1 ready", "url": f"{healthy}/ready"},
        ],
        json_assertions=[{"path": "status", "equals": "ok"}],
        successes=1,
        deadline=0.5,
        **FAST,
    )
    assert code == 1
    assert [t["passed"] for t in result["targets"]] == [True, False]
    assert "app1 ready (" in result["msg"] and 'JSON status is "ready", expected "ok"' in result["msg"]
    assert "app1 health" not in result["msg"]


def test_fails_after_the_deadline_naming_the_503_target(capsys, healthy, unavailable):
    started = time.monotonic()
    code, result = run_module(
        capsys,
        targets=[{"name": "app1", "url": f"{healthy}/ready"}, {"name": "app2", "url": unavailable.url}],
        successes=2,
        deadline=1.5,
        **FAST,
    )
    assert time.monotonic() - started >= 1.4
    assert code == 1
    assert result["failed"] is True
    assert result["changed"] is False
    assert result["passed"] is False
    assert result["msg"] == (
        "1 of 2 targets did not answer as expected 2 times in a row within 1.5s: "
        f"app2 ({unavailable.url}): HTTP 503, expected 200 (after {unavailable.requests} attempts)"
    )
    app1, app2 = result["targets"]
    assert app1["passed"] is True
    assert (app2["passed"], app2["last_status"], app2["consecutive_successes"]) == (False, 503, 0)


def test_json_assertion_failure_names_the_actual_value(capsys, unavailable):
    code, result = run_module(
        capsys,
        targets=[{"name": "app2", "url": unavailable.url, "status_codes": [200, 503]}],
        json_assertions=[{"path": "status", "equals": "ready"}],
        successes=1,
        deadline=0.5,
        **FAST,
    )
    assert code == 1
    assert "app2 (" in result["msg"]
    assert 'JSON status is "starting", expected "ready"' in result["msg"]
    assert result["targets"][0]["last_error"] == 'JSON status is "starting", expected "ready"'


@pytest.mark.parametrize("broken", [False, True], ids=["healthy", "broken"])
def test_check_mode_runs_the_probes_and_returns_the_same_verdict(capsys, healthy, unavailable, broken):
    args = {
        "targets": [{"url": f"{healthy}/health"}] + ([{"url": unavailable.url}] if broken else []),
        "successes": 2,
        "deadline": 0.8,
        **FAST,
    }
    normal = run_module(capsys, **args)
    before = unavailable.requests
    checked = run_module(capsys, check_mode=True, **args)
    assert checked[0] == normal[0] == (1 if broken else 0)
    assert checked[1]["passed"] == normal[1]["passed"] == (not broken)
    assert checked[1]["changed"] is False
    assert [t["passed"] for t in checked[1]["targets"]] == [t["passed"] for t in normal[1]["targets"]]
    if broken:
        assert unavailable.requests > before  # check mode really probed


def test_tls_with_a_ca_bundle_and_with_the_wrong_ca(capsys, scripted_server, pki):
    server = scripted_server(lambda number: (200, {"status": "ok"}), tls=pki.good.server_context())
    args = {"targets": [{"name": "lb1", "url": f"{server.url}/health"}], "successes": 1, "deadline": 0.5, **FAST}
    code, result = run_module(capsys, ca_path=pki.good.ca, **args)
    assert (code, result["passed"]) == (0, True)
    code, result = run_module(capsys, ca_path=pki.other.ca, **args)
    assert code == 1
    assert "lb1" in result["msg"]
    assert "TLS verification failed: unable to get local issuer certificate" in result["msg"]
    code, result = run_module(capsys, validate_certs=False, **args)
    assert (code, result["passed"]) == (0, True)


def test_client_certificate_is_presented(capsys, scripted_server, pki):
    server = scripted_server(lambda number: (200, {}), tls=pki.good.server_context(require_client_cert=True))
    code, result = run_module(
        capsys,
        targets=[{"url": server.url}],
        ca_path=pki.good.ca,
        client_cert=pki.good.client_cert,
        client_key=pki.good.client_key,
        successes=1,
        deadline=2,
        **FAST,
    )
    assert (code, result["passed"]) == (0, True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"targets": []}, "targets is empty"),
        ({"targets": [{"url": "127.0.0.1:8000/health"}]}, "is not an http:// or https:// URL"),
        ({"targets": [{"url": "http://127.0.0.1/"}], "successes": 0}, "successes must be at least 1"),
        ({"targets": [{"url": "http://127.0.0.1/"}], "json_assertions": [{"path": "a =="}]}, "invalid JMESPath"),
        ({"targets": [{"url": "http://127.0.0.1/"}], "ca_path": "/nonexistent/ca.pem"}, "cannot load the TLS"),
        ({"targets": [{"url": "http://127.0.0.1/"}], "client_key": "/k.pem"}, "client_cert"),
        ({"targets": [{"name": "no url"}]}, "url"),
    ],
)
def test_settings_that_cannot_work_fail_before_probing(capsys, args, message):
    code, result = run_module(capsys, **args)
    assert code == 1
    assert message in result["msg"]
    assert "Traceback" not in result["msg"]


def test_json_assertions_without_jmespath_ask_for_it(capsys, monkeypatch):
    monkeypatch.setattr(health_gate, "HAS_JMESPATH", False)
    code, result = run_module(capsys, targets=[{"url": "http://127.0.0.1/", "json_assertions": [{"path": "ok"}]}])
    assert code == 1
    assert "Failed to import the required Python library (jmespath)" in result["msg"]


def test_header_values_never_appear_in_the_result(capsys, healthy):
    # The result Ansible prints (-v) and keeps (register) holds the module's arguments too.
    code, result = run_module(
        capsys,
        targets=[{"name": "app1", "url": f"{healthy}/health", "headers": {"X-Api-Key": "k3y-per-target"}}],
        headers={"Authorization": "Bearer s3cret-gate-wide"},
        successes=1,
        deadline=10,
        **FAST,
    )
    text = json.dumps(result)
    assert code == 0 and result["passed"] is True
    assert "s3cret-gate-wide" not in text and "k3y-per-target" not in text
    assert result["invocation"]["module_args"]["headers"] == {"Authorization": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}
