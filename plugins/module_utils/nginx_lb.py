# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Desired state of the upstream pools of an aistack.fleet nginx load balancer.

The nginx_lb role writes the pool definitions (pools.json: members, addresses, weights,
balancing method); lb_member records runtime changes (state.json: drained members, weight
and backup overrides, the active label of a blue/green pair, label weights of a
stable/canary pair). The upstream include file is rendered from both, here and only here.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import json
import os
import tempfile
import time
from contextlib import contextmanager

POOLS_FILE = "pools.json"
STATE_FILE = "state.json"
UPSTREAMS_FILE = "conf.d/10-upstreams.conf"
LOCK_FILE = ".lb_member.lock"
WEIGHT_MAX = 1000
WORKER_TITLE = b"nginx: worker process"
RELOAD_TIMEOUT = 15
METHODS = {"least_conn": "least_conn;", "round_robin": None, "ip_hash": "ip_hash;", "random": "random two least_conn;"}
NO_BACKUP_METHODS = ("ip_hash", "random")


class LbError(Exception):
    """A problem an operator can fix, described in one sentence."""


def load_json(path, default):
    """Read a JSON document, or return a copy of default when the file does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return copy.deepcopy(default)
        raise LbError(f"Cannot read {path}: {exc.strerror}.") from exc
    except ValueError as exc:
        raise LbError(f"{path} is not valid JSON ({exc}); fix or remove it and re-run the nginx_lb role.") from exc


def read_text(path):
    """Return the content of a text file, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def atomic_write(path, text, mode=0o644):
    """Replace path with text in one rename, so readers never see half a file."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".lb_member.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def restore(path, text):
    """Put back what read_text returned earlier (None: the file did not exist)."""
    if text is None:
        if os.path.exists(path):
            os.unlink(path)
    else:
        atomic_write(path, text)


@contextmanager
def locked(path, timeout):
    """Hold an exclusive lock on path; other lb_member runs on this host wait for it."""
    with open(path, "a", encoding="utf-8") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LbError(
                        f"Another lb_member run held the lock {path} for more than {timeout} seconds; "
                        "try again when it has finished."
                    ) from exc
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def find_pool(pools, name):
    pool = pools.get("pools", {}).get(name)
    if pool is None:
        known = ", ".join(sorted(pools.get("pools", {}))) or "none"
        raise LbError(f"Pool '{name}' is not defined on this load balancer (known pools: {known}).")
    return pool


def find_member(pool_name, pool, member):
    for entry in pool["members"]:
        if member in (entry["name"], entry["address"]):
            return entry["name"]
    known = ", ".join(entry["name"] for entry in pool["members"]) or "none"
    raise LbError(f"Pool '{pool_name}' has no member '{member}' (its members: {known}).")


def _labels_text(labels):
    return ", ".join(sorted(labels)) or "none"


def _change_member(pool_name, pool, entry, params):
    """Record the member's own changes (state, weight, backup) in its state entry."""
    if params.get("state") is not None:
        entry["state"] = params["state"]
    if params.get("weight") is not None:
        if not 1 <= params["weight"] <= WEIGHT_MAX:
            raise LbError(f"Weight {params['weight']} is out of range: use 1 to {WEIGHT_MAX}.")
        entry["weight"] = params["weight"]
    if params.get("backup") is not None:
        if params["backup"] and pool.get("method") in NO_BACKUP_METHODS:
            raise LbError(
                f"Pool '{pool_name}' balances with {pool['method']}, which nginx allows no backup servers for."
            )
        entry["backup"] = params["backup"]


def _label_weights(pool_name, labels, requested):
    """Check the weights per label and return them as integers."""
    weights = {}
    for label, value in requested.items():
        try:
            weight = int(value)
        except (TypeError, ValueError):
            raise LbError(f"The weight of label '{label}' must be a whole number, not '{value}'.") from None
        if label not in labels:
            raise LbError(f"Pool '{pool_name}' has no member labelled '{label}' (labels: {_labels_text(labels)}).")
        if not 0 <= weight <= WEIGHT_MAX:
            raise LbError(f"Weight {weight} of label '{label}' is out of range: use 0 (no traffic) to {WEIGHT_MAX}.")
        weights[label] = weight
    return weights


def _change_pool(pool_name, pool, pool_state, params):
    """Record the pool-wide changes (active label, label weights) in its state entry."""
    labels = {entry.get("label") for entry in pool["members"]} - {None}
    active = params.get("active_label")
    if active:
        if active not in labels:
            raise LbError(f"Pool '{pool_name}' has no member labelled '{active}' (labels: {_labels_text(labels)}).")
        pool_state["active_label"] = active
    elif active is not None:
        pool_state.pop("active_label", None)
    if params.get("label_weights") is not None:
        pool_state["label_weights"] = _label_weights(pool_name, labels, params["label_weights"])


def apply_change(pools, state, params):
    """Return a new state with the requested change; the input is left untouched."""
    new = copy.deepcopy(state)
    new.setdefault("members", {})
    new.setdefault("pools", {})
    pool_name = params.get("pool")
    if pool_name is None:
        return new
    pool = find_pool(pools, pool_name)
    if params.get("member") is not None:
        name = find_member(pool_name, pool, params["member"])
        _change_member(pool_name, pool, new["members"].setdefault(pool_name, {}).setdefault(name, {}), params)
    _change_pool(pool_name, pool, new["pools"].setdefault(pool_name, {}), params)
    # Keep the state file free of empty entries so that doing and undoing leaves no trace.
    new["pools"] = {name: value for name, value in new["pools"].items() if value}
    return new


def effective_members(pool_name, pool, state):
    """The members of a pool as nginx will see them: address, weight, backup, down."""
    overrides = state.get("members", {}).get(pool_name, {})
    pool_state = state.get("pools", {}).get(pool_name, {})
    active = pool_state.get("active_label")
    label_weights = pool_state.get("label_weights", {})
    result = []
    for entry in pool["members"]:
        override = overrides.get(entry["name"], {})
        label = entry.get("label")
        weight = entry.get("weight", 1)
        if label in label_weights:
            weight = label_weights[label]
        weight = override.get("weight", weight)
        down = (
            override.get("state") == "drained"
            or weight == 0
            or (bool(active) and label is not None and label != active)
        )
        result.append(
            {
                "name": entry["name"],
                "address": entry["address"],
                "label": label,
                "weight": max(weight, 1),
                "backup": bool(override.get("backup", entry.get("backup", False))),
                "down": down,
            }
        )
    return result


def render_upstreams(pools, state):
    """The nginx upstream blocks for every pool, as text."""
    lines = ["# Managed by aistack.fleet: rendered by lb_member from pools.json and state.json.", ""]
    for pool_name in sorted(pools.get("pools", {})):
        pool = pools["pools"][pool_name]
        lines.append(f"upstream {pool_name} {{")
        # Shared memory: every worker sees the same connection counts (least_conn) and failures.
        lines.append(f"    zone {pool_name} 64k;")
        method = METHODS.get(pool.get("method", "least_conn"))
        if method:
            lines.append(f"    {method}")
        for member in effective_members(pool_name, pool, state):
            words = [f"server {member['address']}", f"weight={member['weight']}"]
            words += [f"max_fails={pool.get('max_fails', 3)}", f"fail_timeout={pool.get('fail_timeout', '30s')}"]
            if member["backup"]:
                words.append("backup")
            if member["down"]:
                words.append("down")
            lines.append(f"    {' '.join(words)};  # {member['name']}")
        if pool.get("keepalive"):
            lines.append(f"    keepalive {pool['keepalive']};")
            lines.append(f"    keepalive_timeout {pool.get('keepalive_timeout', '60s')};")
        lines += ["}", ""]
    return "\n".join(lines)


def nginx_workers(proc="/proc"):
    """The process ids of nginx workers that accept new connections (not those shutting down)."""
    pids = set()
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as handle:
                title = handle.read().replace(b"\0", b" ").strip()
        except OSError:
            continue
        if title == WORKER_TITLE:
            pids.add(int(entry))
    return pids


def wait_for_new_workers(old, timeout=RELOAD_TIMEOUT, proc="/proc"):
    """Wait until every worker taking new connections was started after the reload.

    `systemctl reload nginx` returns once the master got its signal; until the master has
    started new workers and the old ones stopped accepting, a new request may still be routed
    by the old configuration. Returns True when only new workers accept connections.
    """
    deadline = time.monotonic() + timeout
    while True:
        current = nginx_workers(proc)
        if current and not current & old:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


class LoadBalancer:
    """The files of one load balancer, and the commands that check and reload nginx."""

    def __init__(self, module, config_dir):
        self.module = module
        self.config_dir = config_dir
        self.pools_path = os.path.join(config_dir, POOLS_FILE)
        self.state_path = os.path.join(config_dir, STATE_FILE)
        self.upstreams_path = os.path.join(config_dir, UPSTREAMS_FILE)
        self.lock_path = os.path.join(config_dir, LOCK_FILE)

    def load(self, definitions=None):
        if definitions is None and not os.path.isfile(self.pools_path):
            raise LbError(
                f"{self.pools_path} does not exist: apply the aistack.fleet.nginx_lb role to this host "
                "before using lb_member."
            )
        return load_json(self.pools_path, {}), load_json(self.state_path, {})

    def validate(self):
        nginx = self.module.get_bin_path("nginx", required=True)
        rc, out, err = self.module.run_command([nginx, "-t", "-q"])
        return rc == 0, (err or out).strip()

    def reload(self):
        systemctl = self.module.get_bin_path("systemctl", required=True)
        rc, _out, _err = self.module.run_command([systemctl, "is-active", "--quiet", "nginx"])
        if rc != 0:
            return False
        old_workers = nginx_workers()
        rc, out, err = self.module.run_command([systemctl, "reload", "nginx"])
        if rc != 0:
            raise LbError(
                f"nginx accepted the configuration but 'systemctl reload nginx' failed: {(err or out).strip()}"
            )
        if not wait_for_new_workers(old_workers):
            raise LbError(
                f"nginx was told to reload but its old workers still accept connections after {RELOAD_TIMEOUT} s; "
                "check the error log (worker_shutdown_timeout, file descriptors)"
            )
        return True

    def change(self, params, reload, check_mode):
        """Apply params under the lock; return the result dict for exit_json."""
        with locked(self.lock_path, params.get("lock_timeout", 60)):
            old_pools, state = self.load(params.get("definitions"))
            pools = old_pools if params.get("definitions") is None else params["definitions"]
            new_state = apply_change(pools, state, params)
            old_text = read_text(self.upstreams_path)
            new_text = render_upstreams(pools, new_state)
            old_state_text = read_text(self.state_path)
            old_pools_text = read_text(self.pools_path)
            pools_changed = pools != old_pools or old_pools_text is None
            new_state_text = json.dumps(new_state, indent=2, sort_keys=True) + "\n"
            state_changed = new_state != state or old_state_text is None
            changed = pools_changed or state_changed or new_text != old_text
            result = {
                "changed": changed,
                "reloaded": False,
                "state": new_state,
                "members": {
                    name: effective_members(name, pool, new_state) for name, pool in pools.get("pools", {}).items()
                },
                "diff": [
                    {
                        "before_header": self.pools_path,
                        "after_header": self.pools_path,
                        "before": json.dumps(old_pools, indent=2, sort_keys=True) + "\n",
                        "after": json.dumps(pools, indent=2, sort_keys=True) + "\n",
                    },
                    {
                        "before_header": self.state_path,
                        "after_header": self.state_path,
                        "before": json.dumps(state, indent=2, sort_keys=True) + "\n",
                        "after": new_state_text,
                    },
                    {
                        "before_header": self.upstreams_path,
                        "after_header": self.upstreams_path,
                        "before": old_text or "",
                        "after": new_text,
                    },
                ],
            }
            if not changed or check_mode:
                return result
            if pools_changed:
                atomic_write(self.pools_path, json.dumps(pools, indent=2, sort_keys=True) + "\n")
            if state_changed:
                atomic_write(self.state_path, new_state_text)
            atomic_write(self.upstreams_path, new_text)
            valid, output = self.validate()
            if not valid:
                restore(self.pools_path, old_pools_text)
                restore(self.state_path, old_state_text)
                restore(self.upstreams_path, old_text)
                raise LbError(
                    f"nginx rejected the new upstream configuration, so the previous state was restored: {output}"
                )
            if reload:
                result["reloaded"] = self.reload()
            return result
