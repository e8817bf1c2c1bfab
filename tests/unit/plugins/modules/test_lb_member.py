"""lb_member end to end on files, with a stand-in nginx that accepts or rejects the result.

Real nginx behaviour (reloads, traffic) is proven by the molecule scenario nginx_lb.
"""

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


def test_drain_writes_state_and_upstream_then_is_idempotent(lb, capsys):
    run(lb, pool="app", member="m3", state="drained", _ansible_diff=True)
    first = result(capsys)
    assert first["changed"] is True
    assert first["state"]["members"] == {"app": {"m3": {"state": "drained"}}}
    assert "server 10.0.0.3:8000 weight=1 max_fails=3 fail_timeout=30s down;" in upstreams(lb)
    assert any("drained" in part["after"] for part in first["diff"])
    run(lb, pool="app", member="m3", state="drained")
    assert result(capsys)["changed"] is False


def test_check_mode_reports_without_writing(lb, capsys):
    run(lb, pool="app", member="m1", weight=5, _ansible_check_mode=True)
    assert result(capsys)["changed"] is True
    assert not (lb / "state.json").exists()
    assert not (lb / "conf.d" / "10-upstreams.conf").exists()


def test_rejected_configuration_is_rolled_back_with_nginx_text(lb, capsys):
    run(lb)  # the role's first render
    capsys.readouterr()
    before = ((lb / "state.json").read_text(), upstreams(lb))
    (lb / "fail").write_text('nginx: [emerg] host not found in upstream "bad:80" in upstreams.conf:4\n')
    run(lb, pool="app", member="m2", state="drained")
    failed = result(capsys)
    assert failed["failed"] is True
    assert failed["msg"].startswith("nginx rejected the new upstream configuration, so the previous state was restored")
    assert 'host not found in upstream "bad:80"' in failed["msg"]
    assert ((lb / "state.json").read_text(), upstreams(lb)) == before


def test_rejected_definitions_are_rolled_back(lb, capsys):
    run(lb)
    capsys.readouterr()
    pools_before = (lb / "pools.json").read_text()
    (lb / "fail").write_text("nginx: [emerg] invalid\n")
    broken = {"pools": {"app": dict(DEFINITIONS["pools"]["app"], members=[{"name": "x", "address": "bad:80"}])}}
    run(lb, definitions=broken)
    assert result(capsys)["failed"] is True
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
    assert upstreams(lb).count(" down;") == 20
