# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Redis snapshots: create, list, prune, delete and restore, over the redis client library.

This file has no Ansible import on purpose. The module aistack.fleet.redis_snapshot uses it
through module_utils/redis.py, and the redis role copies it alone to the Redis hosts, where a
systemd timer runs it as a script with the same settings as the module's options, in JSON:

    python3 redis_snapshot.py --config /etc/aistack/redis/snapshot.json scheduled

(``scheduled`` is ``create`` on the primary, which a replica skips, then ``prune`` on every node;
``create``, ``prune`` and ``list`` exist alone).
It prints the result as JSON and exits 1 with one sentence on standard error when it fails.
Run it from a copy, as the role installs it: beside module_utils/redis.py, ``import redis``
would find that file instead of the client library.

A snapshot is ``<backup_dir>/<name>/`` with ``dump.rdb``, ``appendonlydir/`` (the AOF
directory as it was, when AOF is on) and ``manifest.json`` (what was saved, from which server,
and the size and SHA-256 of every file). It is written in ``<name>.partial/`` and renamed when
complete, so an interrupted snapshot never looks complete.

Only client API present in redis-py 4.3 (Debian bookworm's python3-redis) is used.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import traceback

try:
    import redis
except ImportError:
    HAS_REDIS = False
    REDIS_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_REDIS = True
    REDIS_IMPORT_ERROR = None

MANIFEST = "manifest.json"
PARTIAL_SUFFIX = ".partial"
PARTIAL_MAX_AGE_HOURS = 24
MANIFEST_FORMAT = 1
CHUNK = 1024 * 1024
POLL_INTERVAL = 0.2
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
OPERATIONS = ("create", "list", "prune", "delete", "restore")

# Every setting, with the default the module documents. The connection settings are those of
# the aistack.fleet.redis doc fragment.
CONNECTION_DEFAULTS = {
    "login_host": "localhost",
    "login_port": 6379,
    "login_user": None,
    "login_password": None,
    "tls": True,
    "tls_ca_file": None,
    "tls_cert_file": None,
    "tls_key_file": None,
    "tls_check_hostname": True,
    "connect_timeout": 5.0,
}
DEFAULTS = {
    **CONNECTION_DEFAULTS,
    "backup_dir": None,
    "data_dir": "/var/lib/redis",
    "dbfilename": "dump.rdb",
    "appenddirname": "appendonlydir",
    "service": "redis-server",
    "name": None,
    "retention_max_age": 168,
    "retention_keep": 3,
    "timeout": 300,
}


class SnapshotError(Exception):
    """A failure told in one sentence that an operator can act on."""


# --- the connection ---------------------------------------------------------------------------


def connect(params):
    """A redis.Redis client for the connection settings in `params` (missing ones take the defaults)."""
    if not HAS_REDIS:
        raise SnapshotError("The Python library redis (redis-py, Debian package python3-redis) is not installed.")
    settings = {**CONNECTION_DEFAULTS, **{key: params[key] for key in CONNECTION_DEFAULTS if key in params}}
    timeout = float(settings["connect_timeout"])
    kwargs = {
        "host": settings["login_host"],
        "port": int(settings["login_port"]),
        "username": settings["login_user"] or None,
        "password": settings["login_password"] or None,
        "socket_connect_timeout": timeout,
        "socket_timeout": max(timeout, 10.0),
        "decode_responses": True,
    }
    if settings["tls"]:
        kwargs.update(
            ssl=True,
            ssl_cert_reqs="required",
            ssl_ca_certs=settings["tls_ca_file"],
            ssl_certfile=settings["tls_cert_file"],
            ssl_keyfile=settings["tls_key_file"],
            ssl_check_hostname=bool(settings["tls_check_hostname"]),
        )
    return redis.Redis(**kwargs)


def _where(params):
    return f"{params.get('login_host', 'localhost')}:{params.get('login_port', 6379)}"


def _is_down(exc):
    """Whether a client error means that nothing listens (rather than bad credentials or TLS)."""
    if isinstance(exc, redis.exceptions.AuthenticationError):
        return False
    if isinstance(exc, redis.exceptions.TimeoutError):
        return True
    seen = exc
    while seen is not None:
        if isinstance(seen, (ConnectionRefusedError, FileNotFoundError, socket.timeout)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def describe_redis_error(exc, params, doing):
    """A sentence for a failed Redis call; never contains the password."""
    where = _where(params)
    if isinstance(exc, redis.exceptions.AuthenticationError) or "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
        reason = "it refused the credentials (check login_user and login_password)"
    elif isinstance(exc, redis.exceptions.NoPermissionError) or str(exc).startswith("NOPERM"):
        reason = f"the user may not run the command needed ({exc})"
    elif isinstance(exc, redis.exceptions.TimeoutError):
        reason = "it did not answer in time"
    elif isinstance(exc, redis.exceptions.ConnectionError):
        text = str(exc)
        if "SSL" in text or "certificate" in text.lower():
            reason = f"the TLS connection failed ({text}); check tls, tls_ca_file and the certificates"
        elif _is_down(exc):
            reason = f"it is unreachable ({text})"
        else:
            reason = f"the connection failed ({text})"
    else:
        reason = f"it answered with an error ({exc})"
    message = f"Cannot {doing} on Redis at {where}: {reason}."
    password = params.get("login_password")
    if password:
        message = message.replace(password, "********")
    return message


class Server:
    """The few Redis calls snapshots need, each failing with a SnapshotError sentence."""

    def __init__(self, params, client_factory=None):
        self.params = params
        self.client = (client_factory or connect)(params)

    def call(self, doing, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except redis.exceptions.RedisError as exc:
            raise SnapshotError(describe_redis_error(exc, self.params, doing)) from None

    def info(self, section, doing="read INFO"):
        return self.call(doing, self.client.info, section)

    def config(self, name):
        """A CONFIG GET value, or None when CONFIG is renamed, disabled or not allowed."""
        try:
            value = self.client.config_get(name)
        except redis.exceptions.ResponseError:
            return None
        except redis.exceptions.RedisError as exc:
            raise SnapshotError(describe_redis_error(exc, self.params, "read the configuration")) from None
        return value.get(name)


def keyspace_counts(keyspace):
    """({db: keys}, total keys, total keys with a TTL) from INFO keyspace."""
    per_db, total, expires = {}, 0, 0
    for db, stats in sorted(keyspace.items()):
        if isinstance(stats, dict) and db.startswith("db"):
            per_db[db] = int(stats.get("keys", 0))
            total += per_db[db]
            expires += int(stats.get("expires", 0))
    return per_db, total, expires


# --- files --------------------------------------------------------------------------------------


def utc_stamp(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")  # noqa: UP017


def utc_iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="seconds")  # noqa: UP017


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def copy_with_checksum(source, target, mode=0o600):
    """Copy a file, fsync it and return {sha256, size} of what was written."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return {"sha256": digest.hexdigest(), "size": size}


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_name(name, what="snapshot name"):
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name.endswith(PARTIAL_SUFFIX):
        raise SnapshotError(
            f"The {what} {name!r} is not allowed: use letters, digits, '.', '_' and '-' (up to 128), "
            f"starting with a letter or digit and not ending in '{PARTIAL_SUFFIX}'."
        )


def _safe_relative(path):
    return (
        isinstance(path, str)
        and path
        and not os.path.isabs(path)
        and ".." not in path.split("/")
        and os.path.normpath(path) == path
    )


class Snapshots:
    """The snapshot operations over one backup directory and one Redis server.

    `params` holds the settings of DEFAULTS. `client_factory(params)` makes the Redis client
    (connect by default); `service` has stop() and start() for restore (SystemdService by default).
    """

    def __init__(self, params, client_factory=None, service=None, clock=time.time):
        unknown = sorted(set(params) - set(DEFAULTS))
        if unknown:
            raise SnapshotError(f"Unknown setting(s) {', '.join(unknown)}: the settings are {', '.join(DEFAULTS)}.")
        self.params = {**DEFAULTS, **{key: value for key, value in params.items() if value is not None}}
        if not self.params["backup_dir"]:
            raise SnapshotError("backup_dir is not set: name the directory that holds the snapshots.")
        self.backup_dir = os.path.abspath(self.params["backup_dir"])
        self.data_dir = os.path.abspath(self.params["data_dir"])
        self.client_factory = client_factory
        self.service = service or SystemdService(self.params["service"])
        self.clock = clock
        for option in ("retention_max_age", "timeout"):
            if int(self.params[option]) < 0:
                raise SnapshotError(f"{option} must not be negative.")
        if int(self.params["retention_keep"]) < 1:
            raise SnapshotError("retention_keep must be at least 1, so the newest snapshot is never pruned.")

    def server(self):
        return Server(self.params, self.client_factory)

    # --- reading the backup directory ---------------------------------------------------------

    def scan(self):
        """(complete snapshots newest first, incomplete ones as {name, reason}) without checksums."""
        complete, incomplete = [], []
        try:
            entries = sorted(os.listdir(self.backup_dir))
        except FileNotFoundError:
            return complete, incomplete
        except OSError as exc:
            raise SnapshotError(f"Cannot read the backup directory {self.backup_dir}: {exc.strerror}.") from None
        for entry in entries:
            path = os.path.join(self.backup_dir, entry)
            if not os.path.isdir(path) or os.path.islink(path):
                continue
            if entry.endswith(PARTIAL_SUFFIX):
                incomplete.append({"name": entry, "reason": "interrupted: this snapshot was never finished"})
                continue
            try:
                manifest = self.verify(entry, checksums=False)
            except SnapshotError as exc:
                incomplete.append({"name": entry, "reason": str(exc)})
                continue
            complete.append(dict(manifest, path=path, size=sum(item["size"] for item in manifest["files"].values())))
        complete.sort(key=lambda item: (item["created_epoch"], item["name"]), reverse=True)
        return complete, incomplete

    def verify(self, name, checksums=True):
        """The manifest of a complete snapshot, after checking its files; SnapshotError names what is wrong."""
        path = os.path.join(self.backup_dir, name)
        label = f"Snapshot {name}"
        manifest_path = os.path.join(path, MANIFEST)
        try:
            with open(manifest_path, encoding="utf-8") as handle:
                manifest = json.load(handle)
        except FileNotFoundError:
            raise SnapshotError(f"{label} is incomplete: it has no {MANIFEST}.") from None
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not valid JSON"
            raise SnapshotError(f"{label} is corrupt: {MANIFEST} cannot be read ({reason}).") from None
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if not isinstance(files, dict) or not isinstance(manifest.get("created_epoch"), (int, float)):
            raise SnapshotError(f"{label} is corrupt: {MANIFEST} lacks its list of files or its creation time.")
        if manifest.get("name") != name:
            raise SnapshotError(f"{label} is corrupt: its {MANIFEST} names the snapshot {manifest.get('name')!r}.")
        if "dump.rdb" not in files:
            raise SnapshotError(f"{label} is incomplete: its {MANIFEST} lists no dump.rdb.")
        for relative, expected in sorted(files.items()):
            if not _safe_relative(relative) or not isinstance(expected, dict):
                raise SnapshotError(f"{label} is corrupt: its {MANIFEST} lists the invalid path {relative!r}.")
            file_path = os.path.join(path, relative)
            try:
                size = os.lstat(file_path).st_size
            except FileNotFoundError:
                raise SnapshotError(f"{label} is incomplete: the file {relative} is missing.") from None
            if size != expected.get("size"):
                raise SnapshotError(
                    f"{label} is corrupt: the file {relative} has {size} bytes, "
                    f"the manifest says {expected.get('size')}."
                )
            if checksums and sha256_file(file_path) != expected.get("sha256"):
                raise SnapshotError(
                    f"{label} is corrupt: the SHA-256 of the file {relative} differs from the manifest's "
                    "(the file was changed or damaged after the snapshot)."
                )
        return manifest

    # --- create -------------------------------------------------------------------------------

    def create(self, check_mode=False):
        name = self.params["name"]
        if name is not None:
            check_name(name)
            path = os.path.join(self.backup_dir, name)
            if os.path.exists(path):
                manifest = self.verify(name, checksums=False)
                return {"changed": False, "snapshot": manifest, "msg": f"Snapshot {name} exists already."}
        server = self.server()
        version = server.info("server", "reach the server")
        self._check_paths(server)
        if check_mode:
            would = name or utc_stamp(self.clock())
            return {
                "changed": True,
                "snapshot": {"name": would},
                "msg": f"Would create snapshot {would}.",
                "diff": {"before": "", "after": f"{would}\n"},
            }
        state = self._bgsave(server)
        name = name or self._free_name(state["epoch"])
        manifest = self._write(server, name, state, version)
        return {
            "changed": True,
            "snapshot": manifest,
            "msg": f"Created snapshot {name} with {manifest['keys']} keys.",
            "diff": {"before": "", "after": f"{name}\n"},
        }

    def _check_paths(self, server):
        """Refuse when Redis writes elsewhere than data_dir/dbfilename (when CONFIG can tell)."""
        for option, expected in (
            ("dir", self.data_dir),
            ("dbfilename", self.params["dbfilename"]),
            ("appenddirname", self.params["appenddirname"]),
        ):
            actual = server.config(option)
            if actual is None:
                continue
            same = os.path.realpath(actual) == os.path.realpath(expected) if option == "dir" else actual == expected
            if not same:
                setting = "data_dir" if option == "dir" else option
                raise SnapshotError(
                    f"Redis at {_where(self.params)} has {option} {actual}, but {setting} is {expected}: "
                    f"set {setting} to what the server uses."
                )

    def _idle_child(self, persistence):
        return not any(
            int(persistence.get(key, 0))
            for key in ("rdb_bgsave_in_progress", "aof_rewrite_in_progress", "module_fork_in_progress")
        )

    def _bgsave(self, server):
        """Start our own BGSAVE (after any save in progress) and wait for it; the keys at its start."""
        deadline = time.monotonic() + float(self.params["timeout"])
        while True:
            before = server.info("persistence")
            try:
                pipe = server.client.pipeline(transaction=False)
                # Plain BGSAVE, not redis-py's default BGSAVE SCHEDULE: a save that only starts later
                # would not match the keys counted here, in the same round trip.
                pipe.info("keyspace").info("replication").execute_command("BGSAVE")
                keyspace, replication, _started = pipe.execute()
            except redis.exceptions.ResponseError as exc:
                if "in progress" not in str(exc) and "child process" not in str(exc).lower():
                    raise SnapshotError(describe_redis_error(exc, self.params, "start BGSAVE")) from None
                if time.monotonic() > deadline:
                    raise SnapshotError(
                        f"Redis at {_where(self.params)} was busy with another background save or rewrite for "
                        f"more than {self.params['timeout']} s (timeout), so no snapshot was taken."
                    ) from None
                time.sleep(POLL_INTERVAL)
                continue
            except redis.exceptions.RedisError as exc:
                raise SnapshotError(describe_redis_error(exc, self.params, "start BGSAVE")) from None
            epoch = self.clock()
            break
        saves_before = int(before.get("rdb_saves", -1))
        lastsave_before = int(before.get("rdb_last_save_time", 0))
        while True:
            persistence = server.info("persistence", "wait for BGSAVE")
            done = not int(persistence.get("rdb_bgsave_in_progress", 0)) and (
                int(persistence.get("rdb_saves", -1)) > saves_before
                if saves_before >= 0
                else int(persistence.get("rdb_last_save_time", 0)) != lastsave_before
            )
            if done:
                break
            if time.monotonic() > deadline:
                raise SnapshotError(
                    f"BGSAVE on Redis at {_where(self.params)} did not finish within {self.params['timeout']} s "
                    "(timeout), so no snapshot was taken."
                )
            time.sleep(POLL_INTERVAL)
        if persistence.get("rdb_last_bgsave_status") != "ok":
            raise SnapshotError(
                f"BGSAVE on Redis at {_where(self.params)} failed (rdb_last_bgsave_status is "
                f"{persistence.get('rdb_last_bgsave_status')}); see the Redis log, for example for a full disk."
            )
        while not self._idle_child(persistence) and int(persistence.get("aof_enabled", 0)):
            if time.monotonic() > deadline:
                raise SnapshotError(f"An AOF rewrite on Redis at {_where(self.params)} did not finish in time.")
            time.sleep(POLL_INTERVAL)
            persistence = server.info("persistence", "wait for the AOF rewrite")
        per_db, total, expires = keyspace_counts(keyspace)
        return {
            "epoch": epoch,
            "lastsave": int(persistence.get("rdb_last_save_time", 0)),
            "saves": int(persistence.get("rdb_saves", -1)),
            "aof": bool(int(persistence.get("aof_enabled", 0))),
            "keys_per_db": per_db,
            "keys": total,
            "expires": expires,
            "role": replication.get("role"),
            "master_repl_offset": int(replication.get("master_repl_offset", 0)),
        }

    def _free_name(self, epoch):
        base = utc_stamp(epoch)
        name, number = base, 1
        while os.path.exists(os.path.join(self.backup_dir, name)) or os.path.exists(
            os.path.join(self.backup_dir, name + PARTIAL_SUFFIX)
        ):
            number += 1
            name = f"{base}-{number}"
        return name

    def _write(self, server, name, state, version):
        final = os.path.join(self.backup_dir, name)
        partial = final + PARTIAL_SUFFIX
        try:
            os.makedirs(self.backup_dir, mode=0o700, exist_ok=True)
            try:
                os.mkdir(partial, 0o700)
            except FileExistsError:
                if time.time() - os.stat(partial).st_mtime < PARTIAL_MAX_AGE_HOURS * 3600:
                    raise SnapshotError(
                        f"Another snapshot named {name} is being written ({partial} exists); remove that "
                        "directory if no snapshot is running."
                    ) from None
                shutil.rmtree(partial)
                os.mkdir(partial, 0o700)
            files = {}
            rdb = os.path.join(self.data_dir, self.params["dbfilename"])
            try:
                files["dump.rdb"] = copy_with_checksum(rdb, os.path.join(partial, "dump.rdb"))
            except FileNotFoundError:
                raise SnapshotError(
                    f"BGSAVE finished but {rdb} does not exist: is data_dir the directory of this Redis?"
                ) from None
            after = server.info("persistence", "check the saved file")
            if (
                int(after.get("rdb_saves", -1)) != state["saves"]
                or int(after.get("rdb_last_save_time", 0)) != (state["lastsave"])
            ):
                raise SnapshotError(
                    f"Another save replaced {rdb} while it was copied, so the snapshot would not match the "
                    "keys recorded; run it again."
                )
            aof_dir = os.path.join(self.data_dir, self.params["appenddirname"])
            if state["aof"] and os.path.isdir(aof_dir):
                target_dir = os.path.join(partial, "appendonlydir")
                os.mkdir(target_dir, 0o700)
                for entry in sorted(os.listdir(aof_dir)):
                    source = os.path.join(aof_dir, entry)
                    if os.path.isfile(source) and not os.path.islink(source):
                        files[f"appendonlydir/{entry}"] = copy_with_checksum(source, os.path.join(target_dir, entry))
                fsync_dir(target_dir)
            manifest = {
                "format": MANIFEST_FORMAT,
                "name": name,
                "created": utc_iso(state["epoch"]),
                "created_epoch": state["epoch"],
                "host": socket.gethostname(),
                "redis_version": version.get("redis_version"),
                "role": state["role"],
                "master_repl_offset": state["master_repl_offset"],
                "aof_enabled": state["aof"],
                "keys": state["keys"],
                "expires": state["expires"],
                "keys_per_db": state["keys_per_db"],
                "files": files,
            }
            manifest_fd = os.open(os.path.join(partial, MANIFEST), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(manifest_fd, "w", encoding="utf-8") as handle:
                json.dump(manifest, handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            fsync_dir(partial)
            os.rename(partial, final)
            fsync_dir(self.backup_dir)
        except OSError as exc:
            raise SnapshotError(
                f"Cannot write snapshot {name} in {self.backup_dir}: {exc.strerror} ({exc.filename}); "
                f"the unfinished copy is {partial}."
            ) from None
        return manifest

    # --- list, prune, delete --------------------------------------------------------------------

    def list(self):
        complete, incomplete = self.scan()
        return {"changed": False, "snapshots": complete, "incomplete": incomplete}

    def prune(self, check_mode=False):
        complete, incomplete = self.scan()
        now = self.clock()
        keep = int(self.params["retention_keep"])
        max_age = float(self.params["retention_max_age"]) * 3600
        delete = [
            item["name"]
            for index, item in enumerate(complete)
            if index >= keep and now - item["created_epoch"] > max_age
        ]
        kept = [item["name"] for item in complete if item["name"] not in delete]
        stale = []
        for item in incomplete:
            if item["name"].endswith(PARTIAL_SUFFIX):
                path = os.path.join(self.backup_dir, item["name"])
                try:
                    if time.time() - os.stat(path).st_mtime > PARTIAL_MAX_AGE_HOURS * 3600:
                        stale.append(item["name"])
                except FileNotFoundError:
                    continue
        if not check_mode:
            for entry in delete + stale:
                self._remove(entry)
        before = [item["name"] for item in complete]
        return {
            "changed": bool(delete or stale),
            "deleted": delete,
            "deleted_partial": stale,
            "kept": kept,
            "incomplete": [item for item in incomplete if item["name"] not in stale],
            "diff": {"before": _lines(before), "after": _lines(kept)},
        }

    def delete(self, check_mode=False):
        name = self.params["name"]
        if not name:
            raise SnapshotError("operation delete needs the name of the snapshot to delete.")
        if not NAME_PATTERN.match(name):  # unlike create, delete accepts an interrupted '<name>.partial'
            check_name(name)
        path = os.path.join(self.backup_dir, name)
        if not os.path.isdir(path):
            return {"changed": False, "deleted": [], "msg": f"Snapshot {name} does not exist."}
        if not check_mode:
            self._remove(name)
        return {
            "changed": True,
            "deleted": [name],
            "diff": {"before": _lines([name]), "after": ""},
        }

    def _remove(self, entry):
        path = os.path.join(self.backup_dir, entry)
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise SnapshotError(f"Cannot delete {path}: {exc.strerror} ({exc.filename}).") from None

    # --- restore --------------------------------------------------------------------------------

    def restore(self, check_mode=False):
        name = self.params["name"]
        if name is None:
            complete, _incomplete = self.scan()
            if not complete:
                raise SnapshotError(f"There is no complete snapshot in {self.backup_dir} to restore.")
            name = complete[0]["name"]
        check_name(name)
        if not os.path.isdir(os.path.join(self.backup_dir, name)):
            raise SnapshotError(f"There is no snapshot {name} in {self.backup_dir}.")
        manifest = self.verify(name, checksums=True)
        live = self._live_state()
        previous = self._previous_dir()
        expected = int(manifest.get("keys", 0))
        diff = {
            "before": f"snapshot: (running data)\nkeys: {live['keys'] if live['keys'] is not None else 'unknown'}\n",
            "after": f"snapshot: {name}\nkeys: {expected}\n",
        }
        result = {
            "changed": True,
            "restored": name,
            "keys": expected,
            "previous_data": previous,
            "aof_rebuilt": live["aof"],
            "diff": diff,
        }
        if check_mode:
            result["msg"] = (
                f"Snapshot {name} is intact; would stop {self.params['service']}, move the current data to "
                f"{previous} and restore {expected} keys."
            )
            return result
        self.service.stop()
        try:
            self._swap_files(name, previous, live)
        except (OSError, SnapshotError) as exc:
            reason = str(exc) if isinstance(exc, SnapshotError) else f"{exc.strerror} ({exc.filename})"
            back = self._put_back(previous)
            self._start_quietly()
            raise SnapshotError(
                f"Restoring snapshot {name} failed before Redis was started again: {reason}. {back}"
            ) from None
        self.service.start()
        keys = self._wait_loaded(previous)
        tolerance = int(manifest.get("expires", 0))
        if not expected - tolerance <= keys <= expected:
            raise SnapshotError(
                f"Redis started from snapshot {name} with {keys} keys, but the snapshot recorded {expected}"
                + (f" ({tolerance} with a TTL)" if tolerance else "")
                + f"; the data it replaced is in {previous}."
            )
        result["keys"] = keys
        result["msg"] = f"Restored snapshot {name} ({keys} keys); the previous data is in {previous}."
        return result

    def _live_state(self):
        """What the running server says (keys, AOF) before it is stopped; tolerates a stopped server."""
        aof_dir = os.path.join(self.data_dir, self.params["appenddirname"])
        state = {"keys": None, "aof": os.path.isdir(aof_dir), "appendfilename": None}
        server = self.server()
        try:
            persistence = server.client.info("persistence")
        except redis.exceptions.RedisError as exc:
            if _is_down(exc):
                return self._appendfilename(state)
            raise SnapshotError(
                describe_redis_error(exc, self.params, "read the state before the restore") + " Nothing was stopped."
            ) from None
        self._check_paths(server)
        state["aof"] = bool(int(persistence.get("aof_enabled", 0)))
        state["keys"] = keyspace_counts(server.info("keyspace"))[1]
        state["appendfilename"] = server.config("appendfilename")
        return self._appendfilename(state)

    def _appendfilename(self, state):
        if not state["appendfilename"]:
            aof_dir = os.path.join(self.data_dir, self.params["appenddirname"])
            try:
                manifests = [entry for entry in os.listdir(aof_dir) if entry.endswith(".manifest")]
            except OSError:
                manifests = []
            state["appendfilename"] = manifests[0][: -len(".manifest")] if len(manifests) == 1 else "appendonly.aof"
        return state

    def _previous_dir(self):
        base = os.path.join(self.data_dir, f"pre-restore-{utc_stamp(self.clock())}")
        path, number = base, 1
        while os.path.exists(path):
            number += 1
            path = f"{base}-{number}"
        return path

    def _swap_files(self, name, previous, live):
        """Move the current data aside and put the snapshot's RDB (and, with AOF on, a new AOF) in place."""
        stat = os.stat(self.data_dir)
        owner = (stat.st_uid, stat.st_gid)
        os.mkdir(previous, 0o700)
        _chown(previous, owner)
        rdb = os.path.join(self.data_dir, self.params["dbfilename"])
        aof_dir = os.path.join(self.data_dir, self.params["appenddirname"])
        mode = 0o660
        if os.path.exists(rdb):
            mode = os.stat(rdb).st_mode & 0o777
            os.rename(rdb, os.path.join(previous, self.params["dbfilename"]))
        if os.path.exists(aof_dir):
            os.rename(aof_dir, os.path.join(previous, self.params["appenddirname"]))
        source = os.path.join(self.backup_dir, name, "dump.rdb")
        staged = rdb + ".restore"
        if os.path.exists(staged):
            os.unlink(staged)
        copy_with_checksum(source, staged, mode)
        os.chmod(staged, mode)
        _chown(staged, owner)
        if live["aof"]:
            # Redis 7.0 started with appendonly yes and no AOF directory does not load the RDB: it
            # starts empty and writes an empty AOF base. A base made of the snapshot's RDB (the
            # layout Redis itself writes) makes it load exactly the snapshot.
            prefix = live["appendfilename"]
            staged_dir = aof_dir + ".restore"
            if os.path.exists(staged_dir):
                shutil.rmtree(staged_dir)
            os.mkdir(staged_dir, 0o750)
            copy_with_checksum(source, os.path.join(staged_dir, f"{prefix}.1.base.rdb"), mode)
            for entry, content in (
                (f"{prefix}.1.incr.aof", ""),
                (
                    f"{prefix}.manifest",
                    f"file {prefix}.1.base.rdb seq 1 type b\nfile {prefix}.1.incr.aof seq 1 type i\n",
                ),
            ):
                with open(os.path.join(staged_dir, entry), "w", encoding="ascii") as handle:
                    handle.write(content)
                    handle.flush()
                    os.fsync(handle.fileno())
            for entry in os.listdir(staged_dir):
                os.chmod(os.path.join(staged_dir, entry), mode)
                _chown(os.path.join(staged_dir, entry), owner)
            _chown(staged_dir, owner)
            fsync_dir(staged_dir)
            os.rename(staged_dir, aof_dir)
        os.rename(staged, rdb)
        fsync_dir(self.data_dir)

    def _put_back(self, previous):
        """After a failed swap: the previous files back in place. A sentence saying where they are."""
        if not os.path.isdir(previous):
            return "The data was not touched."
        try:
            for entry in (self.params["dbfilename"], self.params["appenddirname"]):
                moved = os.path.join(previous, entry)
                current = os.path.join(self.data_dir, entry)
                if os.path.exists(moved):
                    if os.path.isdir(current) and not os.path.islink(current):
                        shutil.rmtree(current)
                    elif os.path.lexists(current):
                        os.unlink(current)
                    os.rename(moved, current)
            os.rmdir(previous)
        except OSError:
            return f"The previous data could not be put back; it is in {previous}."
        return "The previous data was put back and the service started again."

    def _start_quietly(self):
        with contextlib.suppress(SnapshotError):
            self.service.start()

    def _wait_loaded(self, previous):
        """After the start: wait for PING and loading:0; the total number of keys."""
        deadline = time.monotonic() + float(self.params["timeout"])
        last = None
        while time.monotonic() < deadline:
            try:
                client = (self.client_factory or connect)(self.params)
                client.ping()
                if not int(client.info("persistence").get("loading", 0)):
                    return keyspace_counts(client.info("keyspace"))[1]
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.RedisError as exc:
                last = exc
            time.sleep(POLL_INTERVAL)
        reason = describe_redis_error(last, self.params, "confirm the restore") if last else "it was still loading."
        raise SnapshotError(
            f"Redis did not come back within {self.params['timeout']} s (timeout) after the restore: {reason} "
            f"The data it replaced is in {previous}."
        )


def _chown(path, owner):
    stat = os.lstat(path)
    if (stat.st_uid, stat.st_gid) != owner:
        os.chown(path, *owner)


def _lines(names):
    return "".join(f"{name}\n" for name in names)


class SystemdService:
    """Stops and starts the Redis unit with systemctl (the unit tests replace it)."""

    def __init__(self, unit):
        self.unit = unit

    def _systemctl(self, action):
        try:
            proc = subprocess.run(
                ["systemctl", action, self.unit], capture_output=True, text=True, timeout=600, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SnapshotError(f"Cannot {action} the service {self.unit}: {exc}.") from None
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip() or f"systemctl exited {proc.returncode}"
            raise SnapshotError(f"Cannot {action} the service {self.unit}: {detail}.")

    def stop(self):
        self._systemctl("stop")

    def start(self):
        self._systemctl("start")


def run(params, operation, check_mode=False, client_factory=None, service=None):
    """One operation ('create', 'list', 'prune', 'delete', 'restore'): the result dict (with 'diff')."""
    if operation not in OPERATIONS:
        raise SnapshotError(f"Unknown operation {operation!r}: use one of {', '.join(OPERATIONS)}.")
    snapshots = Snapshots(params, client_factory=client_factory, service=service)
    try:
        return getattr(snapshots, operation)(check_mode) if operation != "list" else snapshots.list()
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise SnapshotError(f"The {operation} operation failed: {exc.strerror or exc}{where}.") from None


# --- the command line the systemd timer runs ---------------------------------------------------


def scheduled(params, client_factory=None):
    """What the timer runs: ``create`` on the primary only, then ``prune`` on every node.

    Every Redis host has the timer; only the primary takes a snapshot (a replica's would hold
    the same data), and every host prunes its own backup directory.
    """
    snapshots = Snapshots(params, client_factory=client_factory)
    role = snapshots.server().info("replication", doing="read the replication role").get("role")
    if role == "master":
        created = run(params, "create", client_factory=client_factory)
    else:
        # INFO replication says "slave" for a replica.
        what = "replica" if role == "slave" else f"node of role {role!r}"
        created = {
            "changed": False,
            "skipped": f"this node is a {what}: only the primary takes scheduled snapshots",
        }
    return {"create": created, "prune": run(params, "prune", client_factory=client_factory)}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Create, prune and list Redis snapshots.")
    parser.add_argument("--config", required=True, help="JSON file with the settings (the module's options)")
    parser.add_argument("command", choices=("create", "prune", "list", "scheduled"))
    args = parser.parse_args(argv)
    try:
        try:
            with open(args.config, encoding="utf-8") as handle:
                params = json.load(handle)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not valid JSON"
            raise SnapshotError(f"Cannot read the settings file {args.config}: {reason}.") from None
        if not isinstance(params, dict):
            raise SnapshotError(f"The settings file {args.config} must hold one JSON object.")
        result = scheduled(params) if args.command == "scheduled" else run(params, args.command)
    except SnapshotError as exc:
        sys.stderr.write(f"redis_snapshot: {exc}\n")
        return 1
    for part in (result, *(value for value in result.values() if isinstance(value, dict))):
        part.pop("diff", None)
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
