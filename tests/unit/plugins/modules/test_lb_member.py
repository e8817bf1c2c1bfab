"""lb_member end to end on files, with a stand-in nginx that accepts or rejects the result.

Real nginx behaviour (the Lua balancer, reload-free changes, traffic) is proven by the fleet
scenario's nginx_lb and deploy verifies.
"""

import hashlib
import http.server
import json
import os
import threading

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.aistack.fleet.plugins.module_utils import nginx_lb
from ansible_collections.aistack.fleet.plugins.modules import lb_member

DEFINITIONS = {
    "pools": {
        "app": {
            "method": "least_conn",
            "max_fails": 3,
            "fail_timeout": "30s",
            "keepalive": 0,
            "members": [
                {"name": f"m{i}", "address": f"10.0.0.{i}:8000", "weight": 1, "backup": False, "label": None}
                for i in range(1, 21)
            ],
        }
    }
}


@pytest.fixture
def lb(tmp_path, monkeypatch):
    """A load balancer directory with pool definitions and an nginx that says yes."""
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "pools.json").write_text(json.dumps(DEFINITIONS))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    nginx = bin_dir / "nginx"
    nginx.write_text('#!/bin/sh\nif [ -e "$NGINX_STUB_FAIL" ]; then cat "$NGINX_STUB_FAIL" >&2; exit 1; fi\nexit 0\n')
    nginx.chmod(0o755)
    # nginx is not running unless a test says so.
    systemctl = bin_dir / "systemctl"
    systemctl.write_text('#!/bin/sh\n[ -e "$NGINX_STUB_ACTIVE" ]\n')
    systemctl.chmod(0o755)
    monkeypatch.setenv("NGINX_STUB_ACTIVE", str(tmp_path / "active"))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("NGINX_STUB_FAIL", str(tmp_path / "fail"))
    return tmp_path


def run(lb_dir, **args):
    args = {"config_dir": str(lb_dir), "reload": False, **args}
    with patch_module_args(args), pytest.raises(SystemExit):
        lb_member.main()


def result(capsys):
    return json.loads(capsys.readouterr().out)


def upstreams(lb_dir):
    return (lb_dir / "conf.d" / "10-upstreams.conf").read_text()


def runtime(lb_dir):
    return (lb_dir / "runtime.conf").read_text()


def test_drain_writes_state_and_run_time_file_then_is_idempotent(lb, capsys):
    run(lb, pool="app", member="m3", state="drained", _ansible_diff=True)
    first = result(capsys)
    assert first["changed"] is True
    assert first["applied"] is False  # nginx is not running: it loads the file when it starts
    assert first["state"]["members"] == {"app": {"m3": {"state": "drained"}}}
    assert "member app m3 10.0.0.3:8000 1 0 1 0\n" in runtime(lb)
    assert any("drained" in part["after"] for part in first["diff"])
    run(lb, pool="app", member="m3", state="drained")
    assert result(capsys)["changed"] is False


class Control(http.server.BaseHTTPRequestHandler):
    """Stand-in for the balancer's control location: answers with the MD5 of the file, or 422."""

    runtime_path = None
    refuse = False

    def do_POST(self):  # noqa: N802 - the name http.server calls
        if self.refuse:
            self.send_response(422)
            body = json.dumps({"error": "runtime.conf line 2: a member record has 8 fields"}).encode()
        else:
            self.send_response(200)
            with open(self.runtime_path, "rb") as handle:
                body = json.dumps({"version": hashlib.md5(handle.read()).hexdigest()}).encode()  # noqa: S324
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def control(lb):
    (lb / "active").write_text("")
    server = http.server.HTTPServer(("127.0.0.1", 0), Control)
    Control.runtime_path = str(lb / "runtime.conf")
    Control.refuse = False
    definitions = dict(DEFINITIONS, control_port=server.server_address[1])
    (lb / "pools.json").write_text(json.dumps(definitions))
    # The role rendered the upstream blocks before: member changes need no reload.
    (lb / "conf.d" / "10-upstreams.conf").write_text(nginx_lb.render_upstreams(definitions))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Control
    server.shutdown()


def test_a_running_nginx_takes_the_change_without_a_reload(lb, control, capsys):
    run(lb, pool="app", member="m1", state="drained", reload=True)
    done = result(capsys)
    assert (done["changed"], done["applied"], done["reloaded"]) == (True, True, False)


def test_a_refused_run_time_file_restores_every_file(lb, control, capsys):
    run(lb, pool="app", member="m1", state="drained")
    capsys.readouterr()
    before = ((lb / "state.json").read_text(), runtime(lb))
    control.refuse = True
    run(lb, pool="app", member="m2", state="drained")
    failed = result(capsys)
    assert failed["msg"].startswith("nginx did not take the new member state (runtime.conf line 2")
    assert ((lb / "state.json").read_text(), runtime(lb)) == before


def test_an_expired_lease_of_an_unreachable_member_is_reported_and_kept(lb, capsys):
    run(lb, pool="app", member="m5", state="drained", lease_ttl=1, lease_owner="run-9")
    capsys.readouterr()
    state = json.loads((lb / "state.json").read_text())
    state["members"]["app"]["m5"]["lease"]["expires"] = 1  # long ago
    (lb / "state.json").write_text(json.dumps(state))
    run(lb, heal_expired=True)
    found = result(capsys)["expired_leases"]
    assert [(item["member"], item["lease"]["owner"], item["healthy"]) for item in found] == [("m5", "run-9", False)]
    assert json.loads((lb / "state.json").read_text())["members"]["app"]["m5"]["state"] == "drained"


def test_expired_label_weights_are_reported_and_removed(lb, capsys):
    labelled = {
        "pools": {
            "app": dict(
                DEFINITIONS["pools"]["app"],
                label_var=["app_track"],
                members=[
                    {"name": "m1", "address": "10.0.0.1:8000", "labels": {"app_track": "stable"}},
                    {"name": "m2", "address": "10.0.0.2:8000", "labels": {"app_track": "canary"}},
                ],
            )
        }
    }
    (lb / "pools.json").write_text(json.dumps(labelled))
    run(lb, pool="app", label_weights={"stable": 19, "canary": 1}, lease_ttl=1, lease_owner="run-7")
    assert result(capsys)["state"]["pools"]["app"]["label_weights_lease"]["owner"] == "run-7"
    state = json.loads((lb / "state.json").read_text())
    state["pools"]["app"]["label_weights_lease"]["expires"] = 1  # long ago
    (lb / "state.json").write_text(json.dumps(state))
    run(lb, heal_expired=True)
    done = result(capsys)
    assert [(item["pool"], item["label_weights"], item["healthy"]) for item in done["expired_weights"]] == [
        ("app", {"stable": 19, "canary": 1}, True)
    ]
    assert json.loads((lb / "state.json").read_text())["pools"] == {}


def test_lease_needs_a_drain(lb, capsys):
    run(lb, pool="app", member="m1", state="enabled", lease_ttl=30)
    assert result(capsys)["msg"].startswith("lease_ttl is the length of a drain or of label weights")


def test_check_mode_reports_without_writing(lb, capsys):
    run(lb, pool="app", member="m1", weight=5, _ansible_check_mode=True)
    assert result(capsys)["changed"] is True
    assert not (lb / "state.json").exists()
    assert not (lb / "runtime.conf").exists()
    assert not (lb / "conf.d" / "10-upstreams.conf").exists()


def test_rejected_configuration_is_rolled_back_with_nginx_text(lb, capsys):
    run(lb)  # the role's first render
    capsys.readouterr()
    before = ((lb / "pools.json").read_text(), runtime(lb), upstreams(lb))
    (lb / "fail").write_text("nginx: [emerg] invalid number of arguments in upstreams.conf:4\n")
    second = {"pools": dict(DEFINITIONS["pools"], api=DEFINITIONS["pools"]["app"])}
    run(lb, definitions=second)
    failed = result(capsys)
    assert failed["failed"] is True
    assert failed["msg"].startswith("nginx rejected the new upstream configuration, so the previous state was restored")
    assert "invalid number of arguments" in failed["msg"]
    assert ((lb / "pools.json").read_text(), runtime(lb), upstreams(lb)) == before


def test_definitions_with_an_unresolvable_member_change_nothing(lb, capsys):
    run(lb)
    capsys.readouterr()
    pools_before = (lb / "pools.json").read_text()
    broken = {"pools": {"app": dict(DEFINITIONS["pools"]["app"], members=[{"name": "x", "address": "bad.invalid:80"}])}}
    run(lb, definitions=broken)
    assert "does not resolve on this load balancer" in result(capsys)["msg"]
    assert (lb / "pools.json").read_text() == pools_before


def test_options_that_need_a_member_say_so(lb, capsys):
    run(lb, pool="app", weight=3)
    assert result(capsys)["msg"] == "The option 'weight' changes one backend: name it with 'member'."


def test_missing_pool_definitions_are_explained(tmp_path, capsys):
    run(tmp_path, pool="app", member="m1", state="drained")
    assert "apply the aistack.fleet.nginx_lb role to this host" in result(capsys)["msg"]


class FakeModule:
    """Just enough of AnsibleModule for LoadBalancer, usable from threads."""

    def get_bin_path(self, name, required=False):
        return "/bin/true"

    def run_command(self, argv):
        return 0, "", ""


def test_twenty_concurrent_changes_lose_no_update(lb):
    balancer = nginx_lb.LoadBalancer(FakeModule(), str(lb))
    errors = []

    def call(i):
        try:
            balancer.change({"pool": "app", "member": f"m{i}", "weight": 10 + i, "state": "drained"}, False, False)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(1, 21)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    state = json.loads((lb / "state.json").read_text())
    assert state["members"]["app"] == {f"m{i}": {"state": "drained", "weight": 10 + i} for i in range(1, 21)}
    assert runtime(lb).count(" 1 0 1 0\n") == 0
    assert sum(line.endswith(" 0 1 0") for line in runtime(lb).splitlines()) == 20
