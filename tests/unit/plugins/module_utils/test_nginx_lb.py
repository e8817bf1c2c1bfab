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
    return nginx_lb.apply_change(POOLS, {}, params)


def server_line(text, name):
    return next(line for line in text.splitlines() if line.endswith(f"# {name}"))


def test_render_defaults():
    text = nginx_lb.render_upstreams(POOLS, {})
    assert "upstream app {" in text
    assert "    zone app 64k;" in text
    assert "    least_conn;" in text
    assert "server blue1:8000 weight=1 max_fails=3 fail_timeout=30s;" in server_line(text, "blue1")
    assert (
        server_line(text, "spare").strip().startswith("server spare:8000 weight=1 max_fails=3 fail_timeout=30s backup;")
    )
    assert "keepalive 32;" in text
    assert "keepalive_timeout 60s;" in text


def test_round_robin_has_no_method_line():
    pools = {"pools": {"app": dict(POOLS["pools"]["app"], method="round_robin")}}
    assert "least_conn" not in nginx_lb.render_upstreams(pools, {})


def test_drain_by_name_or_address_marks_down_and_enable_undoes():
    by_name = change(pool="app", member="blue1", state="drained")
    by_address = change(pool="app", member="blue1:8000", state="drained")
    assert by_name == by_address == {"members": {"app": {"blue1": {"state": "drained"}}}, "pools": {}}
    assert " down;" in server_line(nginx_lb.render_upstreams(POOLS, by_name), "blue1")
    enabled = nginx_lb.apply_change(POOLS, by_name, {"pool": "app", "member": "blue1", "state": "enabled"})
    assert " down" not in server_line(nginx_lb.render_upstreams(POOLS, enabled), "blue1")


def test_weight_and_backup_overrides():
    state = change(pool="app", member="green1", weight=7, backup=True)
    line = server_line(nginx_lb.render_upstreams(POOLS, state), "green1")
    assert "weight=7" in line and " backup" in line


def test_active_label_takes_the_other_side_out_and_empty_string_clears_it():
    state = change(pool="app", active_label="green")
    text = nginx_lb.render_upstreams(POOLS, state)
    assert " down" in server_line(text, "blue1")
    assert " down" not in server_line(text, "green1")
    assert " down" not in server_line(text, "spare")
    cleared = nginx_lb.apply_change(POOLS, state, {"pool": "app", "active_label": ""})
    assert cleared == {"members": {}, "pools": {}}


def test_label_weights_and_zero_means_no_traffic():
    state = change(pool="app", label_weights={"blue": "9", "green": 0})
    text = nginx_lb.render_upstreams(POOLS, state)
    assert "weight=9" in server_line(text, "blue1")
    assert " down" in server_line(text, "green1")


def test_member_weight_beats_label_weight():
    state = nginx_lb.apply_change(
        POOLS, change(pool="app", label_weights={"blue": 9}), {"pool": "app", "member": "blue1", "weight": 2}
    )
    assert "weight=2" in server_line(nginx_lb.render_upstreams(POOLS, state), "blue1")


def test_no_pool_changes_nothing():
    state = {"members": {"app": {"blue1": {"state": "drained"}}}, "pools": {}}
    assert nginx_lb.apply_change(POOLS, state, {"pool": None}) == state


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
    with pytest.raises(nginx_lb.LbError, match="no backup servers"):
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
