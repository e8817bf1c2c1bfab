"""The pure parts of lb_member: state changes, rendering, locking."""

import threading

import pytest

from ansible_collections.aistack.fleet.plugins.module_utils import nginx_lb

POOLS = {
    "pools": {
        "app": {
            "method": "least_conn",
            "max_fails": 3,
            "fail_timeout": "30s",
            "keepalive": 32,
            "keepalive_timeout": "60s",
            "members": [
                {"name": "blue1", "address": "blue1:8000", "weight": 1, "backup": False, "label": "blue"},
                {"name": "green1", "address": "green1:8000", "weight": 1, "backup": False, "label": "green"},
                {"name": "spare", "address": "spare:8000", "weight": 1, "backup": True, "label": None},
            ],
        }
    }
}


def change(**params):
    return nginx_lb.apply_change(POOLS, {}, params, now=1000)


def fake_resolve(address):
    """Stand-in for DNS: every member name maps to a fixed address."""
    names = {"blue1": "10.0.0.1", "green1": "10.0.0.2", "spare": "10.0.0.3"}
    host, _sep, port = address.rpartition(":")
    return f"{names[host]}:{port}"


def member_line(state, name, pools=None):
    text = nginx_lb.render_runtime(pools or POOLS, state, resolve=fake_resolve)
    return next(line for line in text.splitlines() if line.startswith(f"member app {name} "))


def test_render_upstreams_has_a_balancer_block_per_pool_and_no_members():
    text = nginx_lb.render_upstreams(POOLS)
    assert "upstream app {" in text
    assert 'balancer_by_lua_block { require("aistack_balancer").balance("app") }' in text
    assert "keepalive 32;" in text and "keepalive_timeout 60s;" in text
    assert "blue1" not in text


def test_render_runtime_defaults():
    text = nginx_lb.render_runtime(POOLS, {}, resolve=fake_resolve)
    assert "pool app least_conn 3 30 /" in text.splitlines()
    assert member_line({}, "blue1") == "member app blue1 10.0.0.1:8000 1 0 0 0"
    assert member_line({}, "spare") == "member app spare 10.0.0.3:8000 1 1 0 0"


def test_drain_by_name_or_address_marks_down_and_enable_undoes():
    by_name = change(pool="app", member="blue1", state="drained")
    by_address = change(pool="app", member="blue1:8000", state="drained")
    assert by_name == by_address == {"members": {"app": {"blue1": {"state": "drained"}}}, "pools": {}}
    assert member_line(by_name, "blue1") == "member app blue1 10.0.0.1:8000 1 0 1 0"
    enabled = nginx_lb.apply_change(POOLS, by_name, {"pool": "app", "member": "blue1", "state": "enabled"})
    assert member_line(enabled, "blue1") == "member app blue1 10.0.0.1:8000 1 0 0 0"


def test_a_drain_with_a_lease_expires_and_is_found():
    state = change(pool="app", member="blue1", state="drained", lease_ttl=60, lease_owner="run-1")
    assert state["members"]["app"]["blue1"] == {"state": "drained", "lease": {"owner": "run-1", "expires": 1060}}
    assert member_line(state, "blue1") == "member app blue1 10.0.0.1:8000 1 0 1 1060"
    assert nginx_lb.expired_leases(POOLS, state, now=1059) == []
    assert nginx_lb.expired_leases(POOLS, state, now=1060) == [("app", "blue1")]
    renewed = nginx_lb.apply_change(
        POOLS,
        state,
        {"pool": "app", "member": "blue1", "state": "drained", "lease_ttl": 60, "lease_owner": "run-1"},
        now=1050,
    )
    assert renewed["members"]["app"]["blue1"]["lease"]["expires"] == 1110
    healed = nginx_lb.apply_change(POOLS, state, {"heal": [("app", "blue1")]}, now=1070)
    assert healed["members"]["app"]["blue1"] == {"state": "enabled"}


def test_another_run_cannot_take_a_leased_member_until_the_lease_expires():
    state = change(pool="app", member="blue1", state="drained", lease_ttl=60, lease_owner="run-1")
    params = {"pool": "app", "member": "blue1", "state": "drained", "lease_ttl": 60, "lease_owner": "run-2"}
    with pytest.raises(nginx_lb.LbError, match=r"is drained by another run \(run-1\) for 30 more seconds"):
        nginx_lb.apply_change(POOLS, state, params, now=1030)
    taken = nginx_lb.apply_change(POOLS, state, params, now=1061)
    assert taken["members"]["app"]["blue1"]["lease"] == {"owner": "run-2", "expires": 1121}


def test_a_member_out_for_its_side_or_weight_has_no_lease():
    state = change(pool="app", member="blue1", state="drained", lease_ttl=60)
    state = nginx_lb.apply_change(POOLS, state, {"pool": "app", "active_label": "green"}, now=1000)
    assert member_line(state, "blue1").endswith(" 1 0")


def test_keep_serving_refuses_to_drain_the_last_member_in_rotation():
    state = change(pool="app", active_label="blue")
    params = {"pool": "app", "member": "blue1", "state": "drained", "keep_serving": True}
    with pytest.raises(nginx_lb.LbError, match="would leave pool 'app' with no member in rotation"):
        nginx_lb.apply_change(POOLS, state, params)
    assert nginx_lb.apply_change(POOLS, {}, params)["members"]["app"]["blue1"]["state"] == "drained"


def test_weight_and_backup_overrides():
    state = change(pool="app", member="green1", weight=7, backup=True)
    assert member_line(state, "green1") == "member app green1 10.0.0.2:8000 7 1 0 0"


def test_active_label_takes_the_other_side_out_and_empty_string_clears_it():
    state = change(pool="app", active_label="green")
    assert member_line(state, "blue1").endswith(" 1 0")
    assert member_line(state, "green1").endswith(" 0 0")
    assert member_line(state, "spare").endswith(" 0 0")
    cleared = nginx_lb.apply_change(POOLS, state, {"pool": "app", "active_label": ""})
    assert cleared == {"members": {}, "pools": {}}


def test_two_label_variables_serve_blue_green_and_canary_in_one_pool():
    members = [
        {"name": "blue1", "address": "blue1:8000", "labels": {"app_pool": "blue", "app_track": "stable"}},
        {"name": "green1", "address": "green1:8000", "labels": {"app_pool": "green", "app_track": "canary"}},
    ]
    pools = {"pools": {"app": dict(POOLS["pools"]["app"], members=members)}}
    live = nginx_lb.apply_change(pools, {}, {"pool": "app", "active_label": "blue"})
    assert member_line(live, "green1", pools).endswith(" 1 0")
    weighted = nginx_lb.apply_change(pools, {}, {"pool": "app", "label_weights": {"stable": 19, "canary": 1}})
    assert member_line(weighted, "blue1", pools) == "member app blue1 10.0.0.1:8000 19 0 0 0"
    assert member_line(weighted, "green1", pools) == "member app green1 10.0.0.2:8000 1 0 0 0"


def test_label_weights_and_zero_means_no_traffic():
    state = change(pool="app", label_weights={"blue": "9", "green": 0})
    assert member_line(state, "blue1") == "member app blue1 10.0.0.1:8000 9 0 0 0"
    assert member_line(state, "green1").endswith(" 1 0")


def test_label_weights_with_a_lease_expire_and_zero_weights_return_like_a_drain():
    state = change(pool="app", label_weights={"blue": 9, "green": 0}, lease_ttl=60, lease_owner="run-1")
    assert state["pools"]["app"]["label_weights_lease"] == {"owner": "run-1", "expires": 1060}
    assert member_line(state, "blue1") == "member app blue1 10.0.0.1:8000 9 0 0 0"
    # Out for its weight of 0 until the lease ends, then back at its own weight after its health check.
    assert member_line(state, "green1") == "member app green1 10.0.0.2:8000 1 0 1 1060"
    assert nginx_lb.expired_weights(state, now=1059) == []
    assert nginx_lb.expired_weights(state, now=1060) == ["app"]
    params = {"pool": "app", "label_weights": {"blue": 1}, "lease_ttl": 60, "lease_owner": "run-2"}
    with pytest.raises(nginx_lb.LbError, match=r"label weights of pool 'app' are set by another run \(run-1\)"):
        nginx_lb.apply_change(POOLS, state, params, now=1030)
    healed = nginx_lb.apply_change(POOLS, state, {"heal_weights": ["app"]}, now=1070)
    assert healed == {"members": {}, "pools": {}}
    cleared = nginx_lb.apply_change(POOLS, state, {"pool": "app", "label_weights": {}}, now=1010)
    assert cleared == {"members": {}, "pools": {}}


def test_member_weight_beats_label_weight():
    state = nginx_lb.apply_change(
        POOLS, change(pool="app", label_weights={"blue": 9}), {"pool": "app", "member": "blue1", "weight": 2}
    )
    assert member_line(state, "blue1") == "member app blue1 10.0.0.1:8000 2 0 0 0"


def test_no_pool_changes_nothing():
    state = {"members": {"app": {"blue1": {"state": "drained"}}}, "pools": {}}
    assert nginx_lb.apply_change(POOLS, state, {"pool": None}) == state


def test_addresses_are_resolved_and_kept_when_literal():
    assert nginx_lb.resolve_address("127.0.0.1:80") == "127.0.0.1:80"
    assert nginx_lb.resolve_address("[::1]:80") == "[::1]:80"
    assert nginx_lb.resolve_address("localhost:80") in ("127.0.0.1:80", "[::1]:80")
    with pytest.raises(nginx_lb.LbError, match="is not host:port"):
        nginx_lb.resolve_address("localhost")
    with pytest.raises(nginx_lb.LbError, match="does not resolve on this load balancer"):
        nginx_lb.resolve_address("no-such-host.invalid:80")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"pool": "nope"}, "Pool 'nope' is not defined on this load balancer (known pools: app)."),
        ({"pool": "app", "member": "ghost", "state": "drained"}, "Pool 'app' has no member 'ghost'"),
        ({"pool": "app", "member": "blue1", "weight": 0}, "Weight 0 is out of range: use 1 to 1000."),
        ({"pool": "app", "member": "blue1", "weight": 1001}, "Weight 1001 is out of range"),
        ({"pool": "app", "active_label": "red"}, "has no member labelled 'red'"),
        ({"pool": "app", "label_weights": {"blue": 2000}}, "out of range: use 0 (no traffic) to 1000"),
        ({"pool": "app", "label_weights": {"blue": "lots"}}, "must be a whole number"),
    ],
)
def test_readable_errors(params, message):
    with pytest.raises(nginx_lb.LbError, match=None) as info:
        nginx_lb.apply_change(POOLS, {}, params)
    assert message in str(info.value)


def test_backup_refused_with_ip_hash():
    pools = {"pools": {"app": dict(POOLS["pools"]["app"], method="ip_hash")}}
    with pytest.raises(nginx_lb.LbError, match="no backup members"):
        nginx_lb.apply_change(pools, {}, {"pool": "app", "member": "blue1", "backup": True})


def test_input_state_is_not_modified():
    state = {"members": {}, "pools": {}}
    nginx_lb.apply_change(POOLS, state, {"pool": "app", "member": "blue1", "state": "drained"})
    assert state == {"members": {}, "pools": {}}


def test_load_json_explains_broken_files(tmp_path):
    broken = tmp_path / "state.json"
    broken.write_text("{not json")
    with pytest.raises(nginx_lb.LbError, match="is not valid JSON"):
        nginx_lb.load_json(str(broken), {})
    assert nginx_lb.load_json(str(tmp_path / "missing.json"), {"a": 1}) == {"a": 1}


def test_lock_times_out_with_a_sentence(tmp_path):
    path = str(tmp_path / ".lock")
    held = threading.Event()
    release = threading.Event()

    def holder():
        with nginx_lb.locked(path, 5):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    try:
        with pytest.raises(nginx_lb.LbError, match="held the lock"), nginx_lb.locked(path, 0.2):
            pass
    finally:
        release.set()
        thread.join()


def fake_proc(root, titles):
    """A /proc with one cmdline per process id, as nginx sets its titles (NUL-padded)."""
    for pid, title in titles.items():
        (root / str(pid)).mkdir(exist_ok=True)
        (root / str(pid) / "cmdline").write_bytes(title.encode() + b"\0" * 8)
    (root / "self").mkdir(exist_ok=True)


def test_workers_are_the_processes_accepting_connections(tmp_path):
    fake_proc(
        tmp_path,
        {
            1: "nginx: master process /usr/sbin/nginx",
            20: "nginx: worker process",
            21: "nginx: worker process is shutting down",
            30: "python3 nginx: worker process",
        },
    )
    assert nginx_lb.nginx_workers(str(tmp_path)) == {20}


def test_reload_waits_until_old_workers_stop_accepting(tmp_path):
    fake_proc(tmp_path, {20: "nginx: worker process"})
    old = nginx_lb.nginx_workers(str(tmp_path))

    def replace_workers():
        fake_proc(tmp_path, {20: "nginx: worker process is shutting down", 40: "nginx: worker process"})

    timer = threading.Timer(0.3, replace_workers)
    timer.start()
    try:
        assert nginx_lb.wait_for_new_workers(old, timeout=5, proc=str(tmp_path)) is True
    finally:
        timer.cancel()
    assert nginx_lb.nginx_workers(str(tmp_path)) == {40}


def test_reload_reports_old_workers_that_keep_accepting(tmp_path):
    fake_proc(tmp_path, {20: "nginx: worker process"})
    assert nginx_lb.wait_for_new_workers({20}, timeout=0.2, proc=str(tmp_path)) is False


def tls_pools():
    pools = {"backend_tls": {"ca": "/pki/ca.crt", "certificate": "/pki/host.crt", "key": "/pki/host.key"}}
    pools["pools"] = {"app": dict(POOLS["pools"]["app"], tls=True, health_path="/ready")}
    return pools


def test_a_tls_pool_is_marked_https_for_the_balancer_and_a_plain_one_keeps_six_fields():
    assert "pool app least_conn 3 30 /ready https" in nginx_lb.render_runtime(tls_pools(), {}, resolve=fake_resolve)
    assert "pool app least_conn 3 30 /" in nginx_lb.render_runtime(POOLS, {}, resolve=fake_resolve).splitlines()


def test_healing_a_tls_pool_probes_https_with_the_backend_ca_and_client_certificate(monkeypatch):
    seen = {}

    def fake_context(**options):
        seen["tls"] = options
        return "context"

    def fake_probe(targets, policy, context=None):
        seen.update(urls=[target.url for target in targets], context=context)
        return [{"name": target.name, "passed": True, "last_error": None} for target in targets]

    monkeypatch.setattr(nginx_lb.http_probe, "tls_context", fake_context)
    monkeypatch.setattr(nginx_lb.http_probe, "probe_targets", fake_probe)
    drain = {"pool": "app", "member": "blue1", "state": "drained", "lease_ttl": 1}
    state = nginx_lb.apply_change(tls_pools(), {}, drain, now=1)
    drains, _weights = nginx_lb.LoadBalancer.heal(None, tls_pools(), state)
    assert seen["urls"] == ["https://blue1:8000/ready"]
    assert seen["tls"] == {"ca_path": "/pki/ca.crt", "client_cert": "/pki/host.crt", "client_key": "/pki/host.key"}
    assert seen["context"] == "context"
    assert [(d["member"], d["healthy"]) for d in drains] == [("blue1", True)]
