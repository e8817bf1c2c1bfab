"""redis_snapshot, run as Ansible runs it, against a real redis-server on 127.0.0.1.

The server is Debian's redis-server (package redis-server). Restore's stop and start are done
here by a stand-in that stops and starts that local process; the systemd path (systemctl stop
and start of the unit) is exercised by the fleet's molecule scenario.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.aistack.fleet.plugins.module_utils import redis as redis_utils
from ansible_collections.aistack.fleet.plugins.module_utils import redis_snapshot as engine
from ansible_collections.aistack.fleet.plugins.modules import redis_snapshot
from tests.unit.conftest import debian_tool, free_port

redis = pytest.importorskip("redis")

REDIS_SERVER = shutil.which("redis-server")
PASSWORD = "s3cret-for-tests"  # noqa: S105 - the throwaway server's


class LocalRedis:
    """A redis-server process on 127.0.0.1 with its own data directory; stop() and start() like the unit."""

    def __init__(self, root, aof, tls=None, replica_of=None):
        self.data_dir = root / "data"
        self.data_dir.mkdir(parents=True)
        self.port = free_port()
        self.tls = tls
        self.aof = aof
        self.replica_of = replica_of
        self.proc = None
        self.calls = []

    def argv(self):
        argv = [REDIS_SERVER, "--bind", "127.0.0.1", "--requirepass", PASSWORD, "--save", ""]
        argv += ["--appendonly", "yes" if self.aof else "no", "--dir", str(self.data_dir)]
        if self.tls:
            argv += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", self.tls.server_cert]
            argv += ["--tls-key-file", self.tls.server_key, "--tls-ca-cert-file", self.tls.ca]
            argv += ["--tls-auth-clients", "no"]
        else:
            argv += ["--port", str(self.port)]
        if self.replica_of is not None:
            # A replica of the plaintext primary on 127.0.0.1, logged in with the primary's password.
            argv += ["--replicaof", "127.0.0.1", str(self.replica_of), "--masterauth", PASSWORD]
        return argv

    def start(self):
        self.calls.append("start")
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    return
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    pytest.fail("redis-server did not start")
            time.sleep(0.05)

    def stop(self):
        self.calls.append("stop")
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def client(self):
        if self.tls:
            return redis.Redis(
                port=self.port, password=PASSWORD, ssl=True, ssl_ca_certs=self.tls.ca, decode_responses=True
            )
        return redis.Redis(port=self.port, password=PASSWORD, decode_responses=True)

    def fill(self, start, stop, **kwargs):
        pipe = self.client().pipeline()
        for number in range(start, stop):
            pipe.set(f"key:{number}", f"value {number}", **kwargs)
        pipe.execute()

    def keys(self):
        return self.client().dbsize()


def _server(tmp_path, aof, tls=None, replica_of=None):
    debian_tool("redis-server", "redis-server")
    server = LocalRedis(tmp_path, aof, tls, replica_of)
    server.start()
    return server


def wait_for_link(replica, timeout=20):
    """Wait until the replica reports master_link_status:up (its first sync is done)."""
    deadline = time.monotonic() + timeout
    while True:
        replication = replica.client().info("replication")
        if replication.get("master_link_status") == "up":
            return replication
        if time.monotonic() > deadline:
            pytest.fail(f"the replica did not connect to its primary: {replication}")
        time.sleep(0.1)


@pytest.fixture(params=[False, True], ids=["rdb", "aof"])
def server(request, tmp_path):
    """A real Redis with a password, with AOF off and on, stopped after the test."""
    local = _server(tmp_path, request.param)
    yield local
    local.stop()


@pytest.fixture
def rdb_server(tmp_path):
    local = _server(tmp_path, False)
    yield local
    local.stop()


@pytest.fixture
def service(monkeypatch, server):
    """The module's stop/start goes to the local process (and is recorded)."""
    monkeypatch.setattr(redis_snapshot, "SERVICE", server)
    return server


def run_module(capsys, server, backup_dir, check_mode=False, diff=False, **args):
    """main() with these arguments: (exit code, the JSON result Ansible would receive)."""
    args = {
        "backup_dir": str(backup_dir),
        "login_host": "127.0.0.1",
        "login_port": server.port if server else 6379,
        "login_password": PASSWORD,
        "tls": False,
        "data_dir": str(server.data_dir) if server else "/nonexistent",
        "timeout": 20,
        **args,
    }
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        redis_snapshot.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def fake_snapshot(backup_dir, name, age_hours, content=b"REDIS0010 fake"):
    """A complete snapshot directory written by hand, created `age_hours` ago (for list and prune)."""
    path = backup_dir / name
    path.mkdir(parents=True)
    (path / "dump.rdb").write_bytes(content)
    created = time.time() - age_hours * 3600
    manifest = {
        "name": name,
        "created": engine.utc_iso(created),
        "created_epoch": created,
        "keys": 1,
        "expires": 0,
        "files": {"dump.rdb": {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}},
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


# --- create ------------------------------------------------------------------------------------


def test_create_writes_a_verified_snapshot_with_the_keys_of_the_moment(capsys, server, tmp_path):
    server.fill(0, 120)
    code, result = run_module(capsys, server, tmp_path / "backups", operation="create")
    assert code == 0, result
    assert result["changed"] is True
    snapshot = result["snapshot"]
    path = tmp_path / "backups" / snapshot["name"]
    assert path.is_dir()
    assert not list((tmp_path / "backups").glob("*.partial"))
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest == snapshot
    assert manifest["keys"] == 120
    assert manifest["keys_per_db"] == {"db0": 120}
    assert manifest["role"] == "master"
    assert manifest["redis_version"].startswith("7.")
    assert manifest["created"].endswith("+00:00")
    assert isinstance(manifest["master_repl_offset"], int)
    for relative, expected in manifest["files"].items():
        data = (path / relative).read_bytes()
        assert hashlib.sha256(data).hexdigest() == expected["sha256"]
        assert len(data) == expected["size"]
    aof_files = [name for name in manifest["files"] if name.startswith("appendonlydir/")]
    assert bool(aof_files) is server.aof
    assert PASSWORD not in json.dumps(result)


def test_create_check_mode_writes_nothing(capsys, rdb_server, tmp_path):
    saves = rdb_server.client().info("persistence")["rdb_saves"]
    code, result = run_module(capsys, rdb_server, tmp_path / "backups", check_mode=True, operation="create")
    assert code == 0, result
    assert result["changed"] is True
    assert not (tmp_path / "backups").exists()
    assert rdb_server.client().info("persistence")["rdb_saves"] == saves


def test_create_waits_for_a_save_in_progress_then_takes_its_own(capsys, rdb_server, tmp_path):
    client = rdb_server.client()
    rdb_server.fill(0, 40)
    client.config_set("rdb-key-save-delay", 25000)  # 40 keys: the first save takes about a second
    saves = client.info("persistence")["rdb_saves"]
    client.execute_command("BGSAVE")
    rdb_server.fill(40, 50)  # after the first save began: only a save of our own holds them
    client.config_set("rdb-key-save-delay", 0)
    code, result = run_module(capsys, rdb_server, tmp_path / "backups", operation="create")
    assert code == 0, result
    assert result["snapshot"]["keys"] == 50
    assert client.info("persistence")["rdb_saves"] == saves + 2


def test_create_with_an_existing_name_changes_nothing(capsys, rdb_server, tmp_path):
    run_module(capsys, rdb_server, tmp_path / "b", operation="create", name="nightly")
    rdb_server.fill(0, 5)
    code, result = run_module(capsys, rdb_server, tmp_path / "b", operation="create", name="nightly")
    assert code == 0
    assert result["changed"] is False
    assert result["snapshot"]["keys"] == 0


def test_create_refuses_a_data_dir_that_is_not_the_servers(capsys, rdb_server, tmp_path):
    code, result = run_module(capsys, rdb_server, tmp_path / "b", operation="create", data_dir=str(tmp_path))
    assert code == 1
    assert result["msg"] == (
        f"Redis at 127.0.0.1:{rdb_server.port} has dir {rdb_server.data_dir}, but data_dir is {tmp_path}: "
        "set data_dir to what the server uses."
    )
    assert not (tmp_path / "b").exists()


def test_wrong_password_is_a_sentence_without_the_password(capsys, rdb_server, tmp_path):
    code, result = run_module(capsys, rdb_server, tmp_path / "b", operation="create", login_password="wrong-pw")  # noqa: S106
    assert code == 1
    assert "refused the credentials" in result["msg"]
    assert "wrong-pw" not in json.dumps(result)
    assert "Traceback" not in json.dumps(result)


def test_unreachable_server_is_named(capsys, tmp_path):
    port = free_port()
    args = {"login_port": port, "data_dir": str(tmp_path)}
    code, result = run_module(capsys, None, tmp_path / "b", operation="create", **args)
    assert code == 1
    assert result["msg"].startswith(f"Cannot reach the server on Redis at 127.0.0.1:{port}: it is unreachable")


def test_missing_client_library_uses_ansibles_sentence(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(redis_utils, "HAS_REDIS", False)
    code, result = run_module(capsys, None, tmp_path / "b", operation="create")
    assert code == 1
    assert "Failed to import the required Python library (redis" in result["msg"]


def test_create_over_tls_verifies_the_server(capsys, tmp_path, pki):
    local = _server(tmp_path, False, tls=pki.good)
    try:
        tls = {"tls": True, "tls_ca_file": pki.good.ca}
        code, result = run_module(capsys, local, tmp_path / "b", operation="create", **tls)
        assert code == 0, result
        assert result["snapshot"]["keys"] == 0
        code, result = run_module(capsys, local, tmp_path / "b", operation="create", tls=True, tls_ca_file=pki.other.ca)
        assert code == 1
        assert "the TLS connection failed" in result["msg"]
        assert "check tls, tls_ca_file" in result["msg"]
    finally:
        local.stop()


# --- list, prune, delete ----------------------------------------------------------------------


def test_list_reports_complete_newest_first_and_incomplete_apart(capsys, tmp_path):
    backups = tmp_path / "b"
    fake_snapshot(backups, "old", 10)
    fake_snapshot(backups, "new", 1)
    (backups / "cut.partial").mkdir()
    short = fake_snapshot(backups, "short", 2)
    (short / "dump.rdb").write_bytes(b"REDIS")
    gone = fake_snapshot(backups, "gone", 3)
    (gone / "dump.rdb").unlink()
    (fake_snapshot(backups, "garbled", 4) / "manifest.json").write_text("{not json")
    code, result = run_module(capsys, None, backups, operation="list")
    assert code == 0
    assert result["changed"] is False
    assert [item["name"] for item in result["snapshots"]] == ["new", "old"]
    assert result["snapshots"][0]["path"] == str(backups / "new")
    reasons = {item["name"]: item["reason"] for item in result["incomplete"]}
    assert reasons == {
        "cut.partial": "interrupted: this snapshot was never finished",
        "short": "Snapshot short is corrupt: the file dump.rdb has 5 bytes, the manifest says 14.",
        "gone": "Snapshot gone is incomplete: the file dump.rdb is missing.",
        "garbled": "Snapshot garbled is corrupt: manifest.json cannot be read (it is not valid JSON).",
    }


def test_list_of_a_missing_backup_dir_is_empty(capsys, tmp_path):
    code, result = run_module(capsys, None, tmp_path / "none", operation="list")
    assert (code, result["snapshots"], result["incomplete"]) == (0, [], [])


def test_prune_keeps_the_newest_and_the_young(capsys, tmp_path):
    backups = tmp_path / "b"
    for name, age in (("s1", 1), ("s2", 30), ("s3", 50), ("s4", 80), ("s5", 200)):
        fake_snapshot(backups, name, age)
    old_partial, young_partial = backups / "x.partial", backups / "y.partial"
    old_partial.mkdir()
    young_partial.mkdir()
    two_days_ago = time.time() - 48 * 3600
    os.utime(old_partial, (two_days_ago, two_days_ago))
    args = {"operation": "prune", "retention_max_age": 40, "retention_keep": 2}

    code, result = run_module(capsys, None, backups, check_mode=True, diff=True, **args)
    assert code == 0
    assert result["changed"] is True
    assert result["deleted"] == ["s3", "s4", "s5"]
    assert result["diff"] == {"before": "s1\ns2\ns3\ns4\ns5\n", "after": "s1\ns2\n"}
    assert sorted(path.name for path in backups.iterdir()) == ["s1", "s2", "s3", "s4", "s5", "x.partial", "y.partial"]

    code, result = run_module(capsys, None, backups, **args)
    assert (result["deleted"], result["kept"], result["deleted_partial"]) == (
        ["s3", "s4", "s5"],
        ["s1", "s2"],
        ["x.partial"],
    )
    assert sorted(path.name for path in backups.iterdir()) == ["s1", "s2", "y.partial"]
    code, result = run_module(capsys, None, backups, **args)
    assert result["changed"] is False


def test_prune_never_deletes_the_newest_keep_even_when_old(capsys, tmp_path):
    backups = tmp_path / "b"
    for name, age in (("a", 500), ("b", 400), ("c", 300), ("d", 600)):
        fake_snapshot(backups, name, age)
    code, result = run_module(capsys, None, backups, operation="prune", retention_max_age=1)
    assert code == 0
    assert result["kept"] == ["c", "b", "a"]
    assert result["deleted"] == ["d"]


def test_prune_refuses_keeping_none(capsys, tmp_path):
    code, result = run_module(capsys, None, tmp_path, operation="prune", retention_keep=0)
    assert code == 1
    assert result["msg"] == "retention_keep must be at least 1, so the newest snapshot is never pruned."


def test_delete_is_idempotent(capsys, tmp_path):
    backups = tmp_path / "b"
    fake_snapshot(backups, "one", 1)
    code, result = run_module(capsys, None, backups, check_mode=True, operation="delete", name="one")
    assert (code, result["changed"], (backups / "one").exists()) == (0, True, True)
    code, result = run_module(capsys, None, backups, diff=True, operation="delete", name="one")
    assert (result["changed"], result["deleted"], result["diff"]["before"]) == (True, ["one"], "one\n")
    assert not (backups / "one").exists()
    code, result = run_module(capsys, None, backups, operation="delete", name="one")
    assert (code, result["changed"]) == (0, False)


def test_delete_needs_a_name_and_refuses_paths(capsys, tmp_path):
    code, result = run_module(capsys, None, tmp_path, operation="delete")
    assert code == 1
    assert "name" in result["msg"]
    code, result = run_module(capsys, None, tmp_path / "b", operation="delete", name="../data")
    assert code == 1
    assert result["msg"].startswith("The snapshot name '../data' is not allowed")


# --- restore ----------------------------------------------------------------------------------


def test_restore_brings_the_snapshot_back_and_keeps_the_replaced_data(capsys, service, tmp_path):
    service.fill(0, 100)
    service.client().set("key:0", "at snapshot time")
    _code, created = run_module(capsys, service, tmp_path / "b", operation="create")
    service.fill(100, 250)
    service.client().set("key:0", "changed later")

    code, result = run_module(capsys, service, tmp_path / "b", diff=True, operation="restore")
    assert code == 0, result
    assert result["restored"] == created["snapshot"]["name"]
    assert result["keys"] == 100
    assert service.keys() == 100
    assert service.client().get("key:0") == "at snapshot time"
    assert service.calls[-2:] == ["stop", "start"]
    previous = Path(result["previous_data"])
    assert previous.parent == service.data_dir and previous.name.startswith("pre-restore-")
    assert (previous / "dump.rdb").exists() or service.aof  # with AOF only and no save, there may be no RDB
    assert (previous / "appendonlydir").is_dir() is service.aof
    assert result["aof_rebuilt"] is service.aof
    assert result["diff"] == {
        "before": "snapshot: (running data)\nkeys: 250\n",
        "after": f"snapshot: {created['snapshot']['name']}\nkeys: 100\n",
    }
    # The restored data survives the next restart (with AOF on, from the new AOF, not the old one).
    service.stop()
    service.start()
    assert service.keys() == 100


def test_restore_check_mode_verifies_and_stops_nothing(capsys, service, tmp_path):
    service.fill(0, 10)
    run_module(capsys, service, tmp_path / "b", operation="create", name="snap")
    service.fill(10, 20)
    calls = list(service.calls)
    code, result = run_module(capsys, service, tmp_path / "b", check_mode=True, operation="restore", name="snap")
    assert code == 0, result
    assert (result["changed"], result["restored"], result["keys"]) == (True, "snap", 10)
    assert "would stop redis-server" in result["msg"]
    assert service.calls == calls
    assert service.keys() == 20
    assert not list(service.data_dir.glob("pre-restore-*"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            "flip",
            "Snapshot snap is corrupt: the SHA-256 of the file dump.rdb differs from the manifest's "
            "(the file was changed or damaged after the snapshot).",
        ),
        ("truncate", "Snapshot snap is corrupt: the file dump.rdb has 3 bytes, the manifest says"),
        ("remove", "Snapshot snap is incomplete: the file dump.rdb is missing."),
        ("manifest", "Snapshot snap is incomplete: it has no manifest.json."),
    ],
)
def test_restore_refuses_a_damaged_snapshot_before_stopping_anything(capsys, service, tmp_path, damage, message):
    service.fill(0, 10)
    run_module(capsys, service, tmp_path / "b", operation="create", name="snap")
    service.fill(10, 30)
    rdb = tmp_path / "b" / "snap" / "dump.rdb"
    if damage == "flip":
        data = bytearray(rdb.read_bytes())
        data[len(data) // 2] ^= 0xFF
        rdb.write_bytes(bytes(data))
    elif damage == "truncate":
        rdb.write_bytes(b"RED")
    elif damage == "remove":
        rdb.unlink()
    else:
        (tmp_path / "b" / "snap" / "manifest.json").unlink()
    calls = list(service.calls)
    code, result = run_module(capsys, service, tmp_path / "b", operation="restore", name="snap")
    assert code == 1
    assert result["msg"].startswith(message)
    assert service.calls == calls
    assert service.keys() == 30
    assert not list(service.data_dir.glob("pre-restore-*"))


def test_restore_takes_the_newest_complete_snapshot(capsys, service, tmp_path):
    service.fill(0, 5)
    run_module(capsys, service, tmp_path / "b", operation="create", name="older")
    service.fill(5, 8)
    run_module(capsys, service, tmp_path / "b", operation="create", name="newer")
    (tmp_path / "b" / "newest.partial").mkdir()
    service.fill(8, 20)
    code, result = run_module(capsys, service, tmp_path / "b", operation="restore")
    assert code == 0, result
    assert (result["restored"], service.keys()) == ("newer", 8)


def test_restore_with_a_key_count_that_does_not_match_names_the_previous_data(capsys, service, tmp_path):
    service.fill(0, 10)
    run_module(capsys, service, tmp_path / "b", operation="create", name="snap")
    manifest_path = tmp_path / "b" / "snap" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["keys"] = 999
    manifest_path.write_text(json.dumps(manifest))
    code, result = run_module(capsys, service, tmp_path / "b", operation="restore", name="snap")
    assert code == 1
    previous = next(service.data_dir.glob("pre-restore-*"))
    assert result["msg"] == (
        f"Redis started from snapshot snap with 10 keys, but the snapshot recorded 999; "
        f"the data it replaced is in {previous}."
    )


def test_restore_while_redis_is_down_uses_the_files(capsys, service, tmp_path):
    service.fill(0, 7)
    run_module(capsys, service, tmp_path / "b", operation="create", name="snap")
    service.fill(7, 9)
    service.stop()
    code, result = run_module(capsys, service, tmp_path / "b", operation="restore", name="snap")
    assert code == 0, result
    assert service.keys() == 7
    assert result["aof_rebuilt"] is service.aof


def test_restore_of_an_unknown_name_fails_plainly(capsys, rdb_server, tmp_path):
    code, result = run_module(capsys, rdb_server, tmp_path / "b", operation="restore", name="nope")
    assert code == 1
    assert result["msg"] == f"There is no snapshot nope in {tmp_path / 'b'}."


# --- the script the systemd timer runs ---------------------------------------------------------


def timer_script(tmp_path):
    """A copy of the engine alone in a directory, as the role installs it for the timer."""
    script_dir = tmp_path / "script"
    script_dir.mkdir()
    script = script_dir / "redis_snapshot.py"
    shutil.copy(engine.__file__, script)  # the role installs this one file, alone
    return script


def run_script(script, config, command, cwd):
    return subprocess.run(
        [sys.executable, str(script), "--config", str(config), command],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def timer_setup(tmp_path, server):
    """The timer's script copied alone, three old snapshots (s1..s3) and its settings file."""
    script = timer_script(tmp_path)
    backups = tmp_path / "b"
    for name, age in (("s1", 500), ("s2", 600), ("s3", 700)):
        fake_snapshot(backups, name, age)
    config = tmp_path / "snapshot.json"
    settings = {
        "login_host": "127.0.0.1",
        "login_port": server.port,
        "login_password": PASSWORD,
        "tls": False,
        "backup_dir": str(backups),
        "data_dir": str(server.data_dir),
        "retention_keep": 2,
    }
    config.write_text(json.dumps(settings))
    return script, backups, config, settings


def test_the_timer_script_creates_and_prunes_alone(rdb_server, tmp_path):
    script, backups, config, settings = timer_setup(tmp_path, rdb_server)
    rdb_server.fill(0, 3)
    proc = run_script(script, config, "scheduled", tmp_path)
    assert proc.returncode == 0, proc.stderr
    output = json.loads(proc.stdout)
    created = output["create"]["snapshot"]["name"]
    assert output["create"]["snapshot"]["keys"] == 3
    assert output["create"]["snapshot"]["role"] == "master"
    assert "skipped" not in output["create"]
    assert output["prune"]["deleted"] == ["s2", "s3"]
    assert sorted(path.name for path in backups.iterdir()) == sorted([created, "s1"])
    assert PASSWORD not in proc.stdout

    config.write_text(json.dumps({**settings, "retention_kep": 2}))
    for command in ("list", "scheduled"):
        proc = run_script(script, config, command, tmp_path)
        assert proc.returncode == 1
        assert proc.stderr.startswith("redis_snapshot: Unknown setting(s) retention_kep: the settings are login_host,")
        assert "Traceback" not in proc.stderr


def test_the_timer_script_on_a_replica_skips_create_and_still_prunes(rdb_server, tmp_path):
    rdb_server.fill(0, 5)
    replica = _server(tmp_path / "replica", False, replica_of=rdb_server.port)
    try:
        replication = wait_for_link(replica)
        assert replication["role"] == "slave"
        assert replica.keys() == 5  # a real replica, synchronised from the primary
        script, backups, config, settings = timer_setup(tmp_path, replica)
        saves = replica.client().info("persistence")["rdb_saves"]

        proc = run_script(script, config, "scheduled", tmp_path)
        assert proc.returncode == 0, proc.stderr
        output = json.loads(proc.stdout)
        assert output["create"] == {
            "changed": False,
            "skipped": "this node is a replica: only the primary takes scheduled snapshots",
        }
        # Without a new snapshot, the newest two of the old ones are kept.
        assert output["prune"]["deleted"] == ["s3"]
        assert output["prune"]["kept"] == ["s1", "s2"]
        assert sorted(path.name for path in backups.iterdir()) == ["s1", "s2"]  # no snapshot, not even a .partial
        assert replica.client().info("persistence")["rdb_saves"] == saves  # and no BGSAVE on the replica
        assert PASSWORD not in proc.stdout
    finally:
        replica.stop()


def test_an_interrupted_create_never_looks_complete(capsys, monkeypatch, rdb_server, tmp_path):
    rdb_server.fill(0, 3)
    real_copy = engine.copy_with_checksum

    def copy_then_fail(source, target, mode=0o600):
        real_copy(source, target, mode)
        raise OSError(28, "No space left on device", target)

    monkeypatch.setattr(engine, "copy_with_checksum", copy_then_fail)
    code, result = run_module(capsys, rdb_server, tmp_path / "b", operation="create", name="cut")
    assert code == 1
    assert result["msg"].startswith("Cannot write snapshot cut in ")
    assert "No space left on device" in result["msg"]
    monkeypatch.setattr(engine, "copy_with_checksum", real_copy)
    code, result = run_module(capsys, rdb_server, tmp_path / "b", operation="list")
    assert result["snapshots"] == []
    assert [item["name"] for item in result["incomplete"]] == ["cut.partial"]


def test_create_reports_its_diff(capsys, rdb_server, tmp_path):
    code, result = run_module(capsys, rdb_server, tmp_path / "b", diff=True, operation="create", name="d1")
    assert (code, result["diff"]) == (0, {"before": "", "after": "d1\n"})
