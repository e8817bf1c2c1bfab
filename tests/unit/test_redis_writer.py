"""The failover writer (tests/perf/redis/writer.py) against REAL redis-server and Sentinel processes.

Everything runs on 127.0.0.1 with Debian's redis-server (package redis-server): data nodes
with ACL users (the writer, the Sentinels, replication, an admin for the test) and
Sentinels that also require ACL authentication. The writer runs as a subprocess, exactly as
on a fleet host.

With `min-replicas-to-write 1` and a single replica, the promoted replica refuses writes
(NOREPLICAS) until a replica is attached again, so the failover test brings the killed
primary back as a replica of the new master, as a rebooted node would come back.
"""

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.unit.conftest import debian_tool, free_port

WRITER = ROOT / "tests" / "perf" / "redis" / "writer.py"
REDIS_SERVER = shutil.which("redis-server")
MASTER = "fleet"

_spec = importlib.util.spec_from_file_location("redis_writer", WRITER)
writer = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = writer  # dataclasses look their module up there
_spec.loader.exec_module(writer)


@pytest.fixture
def redis_server():
    """redis-server must be there in CI; elsewhere its absence skips."""
    return debian_tool("redis-server", "redis-server")


class Lab:
    """Redis data nodes and Sentinels on 127.0.0.1, each from its own config file, stopped after the test."""

    def __init__(self, directory, binary):
        self.dir = directory
        self.binary = binary
        self.pw = {role: secrets.token_hex(12) for role in ("writer", "sentinel", "replica", "admin", "peer")}
        self.procs = {}
        self.configs = {}
        self.tls = None  # (pki, ca file the servers trust) for TLS labs

    # --- configuration -------------------------------------------------------------------

    def _listen(self, port, *, sentinel=False):
        if self.tls is None:
            return [f"port {port}"]
        pki = self.tls
        lines = [
            "port 0",
            f"tls-port {port}",
            f"tls-cert-file {pki.server_cert}",
            f"tls-key-file {pki.server_key}",
            f"tls-ca-cert-file {pki.ca}",
            "tls-auth-clients yes",
            "tls-replication yes",
        ]
        # Sentinel and replicas connect as clients with the client certificate.
        return [*lines, f"tls-client-cert-file {pki.client_cert}", f"tls-client-key-file {pki.client_key}"]

    def data_node(self, name, *, min_replicas, replicaof=None):
        port = free_port()
        pw = self.pw
        lines = [
            *self._listen(port),
            "bind 127.0.0.1",
            f"dir {self.dir}",
            'save ""',
            "appendonly no",
            "repl-diskless-sync yes",
            "repl-diskless-sync-delay 0",
            f"min-replicas-to-write {min_replicas}",
            "min-replicas-max-lag 10",
            "user default off",
            f"user writer on >{pw['writer']} ~writer:* resetchannels -@all +set +mget +del +wait +role +ping",
            f"user sentinel on >{pw['sentinel']} allchannels -@all +multi +slaveof +ping +exec +subscribe"
            " +config|rewrite +role +publish +info +client|setname +client|kill +script|kill",
            f"user replica on >{pw['replica']} -@all +psync +replconf +ping",
            f"user admin on >{pw['admin']} ~* &* +@all",
            "masteruser replica",
            f"masterauth {pw['replica']}",
        ]
        if replicaof:
            lines.append(f"replicaof 127.0.0.1 {replicaof}")
        self._start(name, port, lines)
        return port

    def sentinels(self, count, primary, *, quorum, replicas=()):
        ports = [free_port() for _number in range(count)]
        ids = [secrets.token_hex(20) for _number in range(count)]
        pw = self.pw
        for index, port in enumerate(ports):
            lines = [
                *self._listen(port, sentinel=True),
                "bind 127.0.0.1",
                f"dir {self.dir}",
                f"sentinel myid {ids[index]}",
                f"sentinel monitor {MASTER} 127.0.0.1 {primary} {quorum}",
                f"sentinel down-after-milliseconds {MASTER} 1000",
                f"sentinel failover-timeout {MASTER} 3000",
                f"sentinel parallel-syncs {MASTER} 1",
                f"sentinel auth-user {MASTER} sentinel",
                f"sentinel auth-pass {MASTER} {pw['sentinel']}",
                "sentinel sentinel-user peer",
                f"sentinel sentinel-pass {pw['peer']}",
                "user default off",
                f"user writer on >{pw['writer']} -@all +ping +sentinel|get-master-addr-by-name",
                f"user peer on >{pw['peer']} allchannels +@all",
            ]
            lines += [f"sentinel known-replica {MASTER} 127.0.0.1 {replica}" for replica in replicas]
            lines += [
                f"sentinel known-sentinel {MASTER} 127.0.0.1 {other} {ids[j]}"
                for j, other in enumerate(ports)
                if j != index
            ]
            self._start(f"sentinel{index + 1}", port, lines, sentinel=True)
        for port in ports:
            self.until(lambda port=port: self.call(port, "peer", "SENTINEL", "CKQUORUM", MASTER), "Sentinel quorum")
        return ports

    # --- processes -----------------------------------------------------------------------

    def _start(self, name, port, lines, *, sentinel=False):
        config = self.dir / f"{name}.conf"
        config.write_text("\n".join(lines) + "\n")
        self.configs[name] = (config, port, sentinel)
        self._spawn(name)

    def _spawn(self, name):
        config, port, sentinel = self.configs[name]
        log = (self.dir / f"{name}.log").open("a")
        argv = [self.binary, str(config)] + (["--sentinel"] if sentinel else [])
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.procs[name].poll() is not None:
                    pytest.fail(f"{name} did not start:\n{self.log(name)}")
                time.sleep(0.05)

    def kill(self, name):
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(timeout=10)

    def restart_as_replica(self, name, master_port):
        config, _port, _sentinel = self.configs[name]
        with config.open("a") as handle:
            handle.write(f"replicaof 127.0.0.1 {master_port}\n")
        self._spawn(name)

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def log(self, name):
        path = self.dir / f"{name}.log"
        return path.read_text()[-3000:] if path.exists() else ""

    # --- talking to the servers ----------------------------------------------------------

    def call(self, port, user, *command):
        return self.calls(port, user, command)[-1]

    def calls(self, port, user, *commands):
        """Run the commands one after the other on one connection; their replies."""
        context = None
        if self.tls is not None:
            context = writer.ssl.create_default_context(cafile=self.tls.ca)
            context.load_cert_chain(self.tls.client_cert, self.tls.client_key)
        conn = writer.Connection("127.0.0.1", port, 2.0, context)
        try:
            conn.call("AUTH", user, self.pw[user])
            return [conn.call(*command, timeout=5) for command in commands]
        finally:
            conn.close()

    @staticmethod
    def until(probe, what, seconds=15):
        deadline = time.monotonic() + seconds
        while True:
            try:
                result = probe()
                if result:
                    return result
            except (OSError, writer.RespError) as error:
                last = error
            else:
                last = result
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not reached within {seconds} s (last: {last!r})")
            time.sleep(0.1)

    # --- the writer ----------------------------------------------------------------------

    def until_written(self, port, keys):
        """Wait for the writer's progress (keys on the primary), not for a guess of its start-up time."""
        self.until(lambda: self.call(port, "admin", "DBSIZE") >= keys, f"{keys} keys written")

    def writer(self, sentinels, *args, auth_with=None):
        argv = [sys.executable, str(WRITER), "--sentinels", ",".join(f"127.0.0.1:{p}" for p in sentinels)]
        argv += ["--master", MASTER, "--user", "writer", *args]
        if self.tls is not None:
            argv += ["--tls", "--ca-file", self.tls.ca, "--cert-file", self.tls.client_cert]
            argv += ["--key-file", self.tls.client_key]
        env = {**os.environ, "REDIS_WRITER_PASSWORD": self.pw["writer"] if auth_with is None else auth_with}
        stderr = (self.dir / "writer.err").open("w")
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        stderr.close()
        return proc

    def result(self, proc, timeout=40):
        out, _stderr = proc.communicate(timeout=timeout)
        err = (self.dir / "writer.err").read_text()
        for secret in self.pw.values():
            assert secret not in out + err
        return proc.returncode, out, err


@pytest.fixture
def lab(tmp_path, redis_server):
    running = Lab(tmp_path, redis_server)
    yield running
    running.stop()


def summary_of(returncode, out, err):
    assert returncode == 0, f"writer exited {returncode}:\n{err}"
    lines = out.splitlines()
    assert len(lines) == 1, out
    return json.loads(lines[0])


def test_counts_every_write_against_a_single_primary(lab):
    primary = lab.data_node("primary", min_replicas=0)
    sentinels = lab.sentinels(1, primary, quorum=1)
    proc = lab.writer(sentinels, "--rate", "100", "--duration", "2", "--replicas", "0", "--cleanup")
    summary = summary_of(*lab.result(proc))
    assert 190 <= summary["attempted"] <= 201, summary
    assert summary["acknowledged"] == summary["attempted"]
    assert summary["failed"] == 0
    assert summary["lost_acknowledged"] == 0
    assert summary["lost_keys"] == []
    assert summary["masters_seen"] == [f"127.0.0.1:{primary}"]
    assert summary["first_failure_at"] is None
    assert summary["recovered_at"] is None
    # No outage: the longest gap between acknowledged writes is a scheduling hiccup at most.
    assert 0 <= summary["unavailable_seconds"] < 1.5
    assert len(summary["longest_outage"]) == 2
    assert 1.9 <= summary["duration"] <= 5
    assert summary["prefix"].startswith("writer:")
    assert summary["deleted"] == summary["attempted"]
    assert lab.call(primary, "admin", "DBSIZE") == 0


def test_detects_acknowledged_writes_that_disappear(lab):
    primary = lab.data_node("primary", min_replicas=0)
    sentinels = lab.sentinels(1, primary, quorum=1)
    proc = lab.writer(sentinels, "--rate", "100", "--duration", "3", "--replicas", "0", "--prefix", "writer:flush:")
    lab.until_written(primary, 30)
    assert lab.call(primary, "admin", "FLUSHALL") == "OK"
    summary = summary_of(*lab.result(proc))
    assert summary["failed"] == 0, summary
    assert summary["acknowledged"] == summary["attempted"]
    # The writes before the FLUSHALL were acknowledged and are gone, those after it are there.
    assert 0 < summary["lost_acknowledged"] < summary["acknowledged"], summary
    assert len(summary["lost_keys"]) == 20
    assert summary["lost_keys"][0] == "writer:flush:1"
    assert all(key.startswith("writer:flush:") for key in summary["lost_keys"])


def test_no_acknowledged_write_is_lost_when_the_primary_is_killed(lab):
    primary = lab.data_node("primary", min_replicas=1)
    replica = lab.data_node("replica", min_replicas=1, replicaof=primary)
    lab.until(lambda: b"master_link_status:up" in lab.call(replica, "admin", "INFO", "replication"), "replication")
    sentinels = lab.sentinels(3, primary, quorum=2, replicas=[replica])
    # The replica acknowledges writes (a freshly synced one may not answer the first WAIT in time).
    lab.until(lambda: lab.calls(primary, "admin", ("SET", "ready", 1), ("WAIT", 1, 1000))[-1] == 1, "WAIT 1")

    proc = lab.writer(sentinels, "--rate", "50", "--duration", "12")
    lab.until_written(primary, 100)
    lab.kill("primary")
    killed_at = time.monotonic()

    def promoted():
        return lab.call(sentinels[0], "peer", "SENTINEL", "get-master-addr-by-name", MASTER) == [
            b"127.0.0.1",
            str(replica).encode(),
        ]

    lab.until(promoted, "Sentinel promotes the replica")
    promoted_after = time.monotonic() - killed_at
    lab.restart_as_replica("primary", replica)

    returncode, out, err = lab.result(proc)
    summary = summary_of(returncode, out, err)
    print(f"promoted {promoted_after:.1f} s after the kill; writer: {json.dumps(summary)}\n{err}")
    assert summary["lost_acknowledged"] == 0, summary
    assert summary["masters_seen"] == [f"127.0.0.1:{primary}", f"127.0.0.1:{replica}"], summary
    assert summary["failed"] > 0
    assert summary["acknowledged"] + summary["failed"] == summary["attempted"]
    # The kill came after 100 writes at 50/s, well before the run's end.
    assert 1.9 <= summary["first_failure_at"] <= 9, summary
    assert summary["recovered_at"] is not None
    assert summary["recovered_at"] > summary["first_failure_at"]
    assert summary["recovered_at"] < summary["duration"]
    # Acknowledged writes on the new master: the run's keys there are more than those before the kill.
    # Every write before the first failure was acknowledged: at most first_failure_at * rate + 1 of them.
    acknowledged_after = summary["acknowledged"] - int(summary["first_failure_at"] * 50) - 1
    assert acknowledged_after >= 50, summary
    assert isinstance(summary["unavailable_seconds"], float)
    assert 0.5 < summary["unavailable_seconds"] < 15, summary
    outage_from, outage_to = summary["longest_outage"]
    assert outage_from < summary["first_failure_at"] < summary["recovered_at"] == outage_to


def test_sigterm_ends_the_run_cleanly(lab):
    primary = lab.data_node("primary", min_replicas=0)
    sentinels = lab.sentinels(1, primary, quorum=1)
    proc = lab.writer(sentinels, "--rate", "50", "--duration", "0", "--replicas", "0", "--cleanup")
    lab.until_written(primary, 50)
    proc.send_signal(signal.SIGTERM)
    summary = summary_of(*lab.result(proc, timeout=10))
    assert 0.9 <= summary["duration"] < 5, summary
    assert summary["acknowledged"] == summary["attempted"] > 40
    assert summary["lost_acknowledged"] == 0
    assert summary["deleted"] == summary["attempted"]


def test_no_master_for_the_read_back_is_an_error_with_the_counts(lab):
    primary = lab.data_node("primary", min_replicas=0)
    sentinels = lab.sentinels(1, primary, quorum=1)
    proc = lab.writer(sentinels, "--rate", "50", "--duration", "4", "--replicas", "0", "--readback-timeout", "0.5")
    lab.until_written(primary, 25)
    lab.kill("primary")
    returncode, out, err = lab.result(proc)
    assert returncode == writer.EXIT_NO_READBACK, err
    summary = json.loads(out)
    assert summary["lost_acknowledged"] is None
    assert "ConnectionRefusedError" in summary["readback_error"]
    assert summary["failed"] > 0
    assert summary["errors"]["NO_MASTER"] > 0
    assert summary["recovered_at"] is None
    # Not recovered: the outage runs from the last acknowledged write to the end of the run.
    assert 0.5 < summary["unavailable_seconds"] < 4, summary
    assert summary["longest_outage"][1] == summary["duration"]


@pytest.mark.parametrize("tls", [False, True])
def test_wrong_password_or_unreachable_sentinels_find_no_master(lab, pki, tls):
    if tls:
        lab.tls = pki.good
    primary = lab.data_node("primary", min_replicas=0)
    sentinels = lab.sentinels(1, primary, quorum=1)

    returncode, out, err = lab.result(lab.writer(sentinels, "--startup-timeout", "0", auth_with="wrong-password"))
    assert returncode == writer.EXIT_NO_MASTER, err
    assert out == ""
    assert "WRONGPASS" in err
    assert "wrong-password" not in err

    returncode, out, err = lab.result(lab.writer([free_port()], "--startup-timeout", "0"))
    assert returncode == writer.EXIT_NO_MASTER, err
    assert "ConnectionRefusedError" in err


def test_tls_verifies_the_server_certificate(lab, pki):
    lab.tls = pki.good
    primary = lab.data_node("primary", min_replicas=0)
    sentinels = lab.sentinels(1, primary, quorum=1)
    summary = summary_of(*lab.result(lab.writer(sentinels, "--rate", "50", "--duration", "1", "--replicas", "0")))
    assert summary["acknowledged"] == summary["attempted"] > 40
    assert summary["lost_acknowledged"] == 0

    lab.tls = pki.other  # a CA that did not sign the servers' certificates
    returncode, _out, err = lab.result(lab.writer(sentinels, "--startup-timeout", "0"))
    assert returncode == writer.EXIT_NO_MASTER
    assert "CERTIFICATE_VERIFY_FAILED" in err


def test_bad_usage(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_WRITER_PASSWORD"}
    base = [sys.executable, str(WRITER), "--master", MASTER]
    for args in (
        ["--sentinels", "127.0.0.1:1", "--user", "writer"],  # no password in the environment
        ["--sentinels", ""],
        ["--sentinels", "127.0.0.1:99999"],
        ["--sentinels", "127.0.0.1:1", "--rate", "0"],
        ["--sentinels", "127.0.0.1:1", "--ca-file", str(tmp_path / "ca.pem")],  # without --tls
    ):
        proc = subprocess.run(base + args, env=env, capture_output=True, text=True, timeout=30, check=False)
        assert proc.returncode == writer.EXIT_USAGE, (args, proc.stderr)
        assert proc.stdout == ""
