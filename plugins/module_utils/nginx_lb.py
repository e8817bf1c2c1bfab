# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Desired state of the upstream pools of an aistack.fleet nginx load balancer.

The nginx_lb role writes the pool definitions (pools.json: members, addresses, weights,
balancing method); lb_member records runtime changes (state.json: drained members and their
leases, weight and backup overrides, the active label of a blue/green pair, label weights of
a stable/canary pair). Two files are rendered from both, here and only here: the upstream
include file (one block per pool, whose members the Lua balancer picks; it changes only when
pools come or go, and only then is nginx reloaded) and the run-time file the balancer loads
without a reload (members, weights, down, lease expiry).
"""

from __future__ import annotations

import copy
import errno
import fcntl
import hashlib
import http.client
import ipaddress
import json
import os
import re
import socket
import tempfile
import time
from contextlib import contextmanager

from ansible_collections.aistack.fleet.plugins.module_utils import http_probe

POOLS_FILE = "pools.json"
STATE_FILE = "state.json"
UPSTREAMS_FILE = "conf.d/10-upstreams.conf"
RUNTIME_FILE = "runtime.conf"
LOCK_FILE = ".lb_member.lock"
CONTROL_PATH = "/aistack/lb/state"
DEFAULT_CONTROL_PORT = 8081
WEIGHT_MAX = 1000
WORKER_TITLE = b"nginx: worker process"
RELOAD_TIMEOUT = 15
METHODS = ("least_conn", "round_robin", "ip_hash", "random")
NO_BACKUP_METHODS = ("ip_hash", "random")
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


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


def member_labels(entry):
    """A member's labels as {variable: value}: 'labels' from the role, or the older single 'label'."""
    labels = entry.get("labels")
    if labels is None:
        labels = {} if entry.get("label") is None else {"label": entry["label"]}
    return {var: str(value) for var, value in labels.items() if value is not None}


def label_variable(pool_name, pool, label):
    """The label variable whose values include label; a value must belong to one variable only."""
    owners = sorted({var for entry in pool["members"] for var, value in member_labels(entry).items() if value == label})
    if not owners:
        known = sorted({value for entry in pool["members"] for value in member_labels(entry).values()})
        raise LbError(f"Pool '{pool_name}' has no member labelled '{label}' (labels: {', '.join(known) or 'none'}).")
    if len(owners) > 1:
        raise LbError(f"Label '{label}' of pool '{pool_name}' is a value of {' and '.join(owners)}: it is ambiguous.")
    return owners[0]


def duration_seconds(value):
    """nginx-style duration ('30s', '2m', '10') in whole seconds."""
    match = re.fullmatch(r"([0-9]+)([smhd]?)", str(value).strip())
    if not match:
        raise LbError(f"'{value}' is not a duration such as 30s, 2m or 1h.")
    return int(match.group(1)) * DURATION_UNITS[match.group(2)]


def _change_member(pool_name, pool, entry, params, now):
    """Record the member's own changes (state and lease, weight, backup) in its state entry."""
    if params.get("state") == "drained" and params.get("lease_ttl"):
        lease = entry.get("lease") if entry.get("state") == "drained" else None
        what = f"Member '{params['member']}' of pool '{pool_name}' is drained by"
        entry["lease"] = _take_lease(what, lease, params, now)
    elif params.get("state") is not None:
        entry.pop("lease", None)
    if params.get("state") is not None:
        entry["state"] = params["state"]
    if params.get("weight") is not None:
        if not 1 <= params["weight"] <= WEIGHT_MAX:
            raise LbError(f"Weight {params['weight']} is out of range: use 1 to {WEIGHT_MAX}.")
        entry["weight"] = params["weight"]
    if params.get("backup") is not None:
        if params["backup"] and pool.get("method") in NO_BACKUP_METHODS:
            raise LbError(f"Pool '{pool_name}' balances with {pool['method']}, which has no backup members.")
        entry["backup"] = params["backup"]


def _label_weights(pool_name, pool, requested):
    """Check the weights per label and return them as integers."""
    weights = {}
    for label, value in requested.items():
        try:
            weight = int(value)
        except (TypeError, ValueError):
            raise LbError(f"The weight of label '{label}' must be a whole number, not '{value}'.") from None
        label_variable(pool_name, pool, label)
        if not 0 <= weight <= WEIGHT_MAX:
            raise LbError(f"Weight {weight} of label '{label}' is out of range: use 0 (no traffic) to {WEIGHT_MAX}.")
        weights[label] = weight
    return weights


def _take_lease(what, current, params, now):
    """A lease for params' owner and lease_ttl; fails while another owner's lease runs."""
    owner = params.get("lease_owner") or ""
    if current and current["expires"] > now and current["owner"] != owner:
        raise LbError(
            f"{what} another run ({current['owner']}) for {int(current['expires'] - now)} more seconds; "
            "wait for it or for its lease to expire."
        )
    return {"owner": owner, "expires": int(now + params["lease_ttl"])}


def _change_pool(pool_name, pool, pool_state, params, now):
    """Record the pool-wide changes (active label, label weights and their lease) in its state entry."""
    active = params.get("active_label")
    if active:
        label_variable(pool_name, pool, active)
        pool_state["active_label"] = active
    elif active is not None:
        pool_state.pop("active_label", None)
    weights = params.get("label_weights")
    if weights is None:
        return
    lease = pool_state.pop("label_weights_lease", None)
    if weights and params.get("lease_ttl"):
        pool_state["label_weights_lease"] = _take_lease(
            f"The label weights of pool '{pool_name}' are set by", lease, params, now
        )
    pool_state["label_weights"] = _label_weights(pool_name, pool, weights)
    if not pool_state["label_weights"]:
        pool_state.pop("label_weights")


def apply_change(pools, state, params, now=None):
    """Return a new state with the requested change; the input is left untouched."""
    now = time.time() if now is None else now
    new = copy.deepcopy(state)
    new.setdefault("members", {})
    new.setdefault("pools", {})
    for name in params.get("heal") or ():
        pool_name, member = name
        new["members"][pool_name][member].pop("lease", None)
        new["members"][pool_name][member]["state"] = "enabled"
    for pool_name in params.get("heal_weights") or ():
        new["pools"][pool_name].pop("label_weights", None)
        new["pools"][pool_name].pop("label_weights_lease", None)
    pool_name = params.get("pool")
    if pool_name is not None:
        pool = find_pool(pools, pool_name)
        if params.get("member") is not None:
            name = find_member(pool_name, pool, params["member"])
            entry = new["members"].setdefault(pool_name, {}).setdefault(name, {})
            _change_member(pool_name, pool, entry, params, now)
        _change_pool(pool_name, pool, new["pools"].setdefault(pool_name, {}), params, now)
        if params.get("state") == "drained" and params.get("keep_serving"):
            serving = [m for m in effective_members(pool_name, pool, new) if not m["down"] and not m["backup"]]
            if not serving:
                raise LbError(
                    f"Draining '{params['member']}' would leave pool '{pool_name}' with no member in rotation "
                    "(the others are drained, weighted 0 or on the idle side); nothing was changed."
                )
    # Keep the state file free of empty entries so that doing and undoing leaves no trace.
    new["pools"] = {name: value for name, value in new["pools"].items() if value}
    return new


def expired_leases(pools, state, now=None):
    """[(pool, member)] of drained members whose lease has passed: their run stopped renewing it."""
    now = time.time() if now is None else now
    found = []
    for pool_name, members in sorted(state.get("members", {}).items()):
        known = {entry["name"] for entry in pools.get("pools", {}).get(pool_name, {}).get("members", [])}
        for name, entry in sorted(members.items()):
            lease = entry.get("lease")
            if name in known and entry.get("state") == "drained" and lease and lease["expires"] <= now:
                found.append((pool_name, name))
    return found


def expired_weights(state, now=None):
    """[pool] whose label weights' lease has passed: the run that set them stopped renewing it."""
    now = time.time() if now is None else now
    return [
        name
        for name, pool_state in sorted(state.get("pools", {}).items())
        if pool_state.get("label_weights_lease", {}).get("expires", now + 1) <= now
    ]


def effective_members(pool_name, pool, state):
    """The members of a pool as nginx will see them: address, weight, backup, down, lease."""
    overrides = state.get("members", {}).get(pool_name, {})
    pool_state = state.get("pools", {}).get(pool_name, {})
    active = pool_state.get("active_label")
    active_var = None
    if active:
        owners = {var for entry in pool["members"] for var, value in member_labels(entry).items() if value == active}
        active_var = owners.pop() if len(owners) == 1 else None
    label_weights = pool_state.get("label_weights", {})
    weights_lease = pool_state.get("label_weights_lease") or {}
    result = []
    for entry in pool["members"]:
        override = overrides.get(entry["name"], {})
        labels = member_labels(entry)
        own = override.get("weight", entry.get("weight", 1))
        weight = next((label_weights[value] for value in labels.values() if value in label_weights), None)
        weight = own if weight is None or "weight" in override else weight
        drained = override.get("state") == "drained"
        inactive = active_var is not None and active_var in labels and labels[active_var] != active
        # A drain or a label weight of 0 with a lease ends when the lease does (the balancer checks
        # the member's health first); without one, and for a member out for its side, it stays out.
        leases = ([override.get("lease") or {}] if drained else []) + ([weights_lease] if weight == 0 else [])
        lease = max(leases, key=lambda item: item.get("expires", 0)) if leases else {}
        open_ended = inactive or not leases or any(not item for item in leases)
        result.append(
            {
                "name": entry["name"],
                "address": entry["address"],
                "label": next(iter(labels.values()), None),
                "labels": labels,
                "weight": max(own if weight == 0 and weights_lease else weight, 1),
                "backup": bool(override.get("backup", entry.get("backup", False))),
                "down": drained or weight == 0 or inactive,
                "lease_expires": 0 if open_ended else lease["expires"],
                "lease_owner": None if open_ended else lease["owner"],
            }
        )
    return result


def render_upstreams(pools):
    """The nginx upstream blocks for every pool, as text: the Lua balancer picks the members."""
    lines = [
        "# Managed by aistack.fleet: rendered by lb_member from pools.json. The members and their",
        "# state are in runtime.conf, which the balancer loads without a reload.",
        "",
    ]
    for pool_name in sorted(pools.get("pools", {})):
        pool = pools["pools"][pool_name]
        lines.append(f"upstream {pool_name} {{")
        lines.append("    server 0.0.0.1:1;  # never used: aistack_balancer sets the peer")
        lines.append(f'    balancer_by_lua_block {{ require("aistack_balancer").balance("{pool_name}") }}')
        if pool.get("keepalive"):
            lines.append(f"    keepalive {pool['keepalive']};")
            lines.append(f"    keepalive_timeout {pool.get('keepalive_timeout', '60s')};")
        lines += ["}", ""]
    return "\n".join(lines)


def resolve_address(address):
    """host:port with the host resolved to an IP address (the balancer takes addresses only)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise LbError(f"Member address '{address}' is not host:port.")
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except OSError as exc:
            raise LbError(f"Member address '{address}' does not resolve on this load balancer: {exc}.") from exc
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        ip = ipaddress.ip_address(infos[0][4][0])
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def render_runtime(pools, state, resolve=resolve_address):
    """The run-time file of the Lua balancer (format in aistack_balancer.lua)."""
    lines = ["# Managed by aistack.fleet: written by lb_member from pools.json and state.json."]
    for pool_name in sorted(pools.get("pools", {})):
        pool = pools["pools"][pool_name]
        method = pool.get("method", "least_conn")
        if method not in METHODS:
            raise LbError(f"Pool '{pool_name}' has an unknown method '{method}' (use {', '.join(METHODS)}).")
        health = pool.get("health_path", "/")
        if not re.fullmatch(r"/[A-Za-z0-9._~/%?=&-]*", health):
            raise LbError(f"Pool '{pool_name}' has a health path that is not a plain URL path: '{health}'.")
        fail_timeout = max(duration_seconds(pool.get("fail_timeout", "30s")), 1)
        scheme = " https" if pool.get("tls") else ""
        lines.append(f"pool {pool_name} {method} {int(pool.get('max_fails', 3))} {fail_timeout} {health}{scheme}")
        for member in effective_members(pool_name, pool, state):
            lines.append(
                f"member {pool_name} {member['name']} {resolve(member['address'])} {member['weight']} "
                f"{int(member['backup'])} {int(member['down'])} {member['lease_expires']}"
            )
    return "\n".join(lines) + "\n"


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


def control_request(port, method, timeout=10):
    """Ask nginx's loopback control location; return (HTTP status, document) or (None, error text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, CONTROL_PATH, headers={"User-Agent": "aistack-lb-member"})
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return None, str(exc)
    finally:
        conn.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, {"error": body[:200].decode("utf-8", "replace")}


class LoadBalancer:
    """The files of one load balancer, and the commands that check, reload and update nginx."""

    def __init__(self, module, config_dir):
        self.module = module
        self.config_dir = config_dir
        self.pools_path = os.path.join(config_dir, POOLS_FILE)
        self.state_path = os.path.join(config_dir, STATE_FILE)
        self.upstreams_path = os.path.join(config_dir, UPSTREAMS_FILE)
        self.runtime_path = os.path.join(config_dir, RUNTIME_FILE)
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

    def active(self):
        systemctl = self.module.get_bin_path("systemctl", required=True)
        return self.module.run_command([systemctl, "is-active", "--quiet", "nginx"])[0] == 0

    def reload(self):
        if not self.active():
            return False
        systemctl = self.module.get_bin_path("systemctl", required=True)
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

    def apply_runtime(self, port, version, method):
        """Have nginx load the run-time file (POST) or confirm it did (GET after a reload)."""
        status, document = control_request(port, method)
        if status == 200 and document.get("version") == version:
            return document
        if status is None or status == 404:
            return None
        raise LbError(
            f"nginx did not take the new member state ({document.get('error') or 'HTTP ' + str(status)}); "
            "the previous state was restored"
        )

    def heal(self, pools, state):
        """Leases that expired, after a health check of the members they kept out.

        Returns ([{pool, member, lease, healthy, detail}] for drains,
        [{pool, label_weights, lease, healthy, detail}] for label weights, healthy when every
        member the weights gave no traffic answers).
        """
        drains = [(pool_name, [name]) for pool_name, name in expired_leases(pools, state)]
        weights = []
        for pool_name in expired_weights(state):
            if pool_name in pools.get("pools", {}):
                owner = state["pools"][pool_name]["label_weights_lease"]["owner"]
                members = effective_members(pool_name, pools["pools"][pool_name], state)
                weights.append((pool_name, [m["name"] for m in members if m["down"] and m["lease_owner"] == owner]))
        # https pools: the members' certificates are checked against the backend CA (they name
        # the member's address) and the load balancer presents its client certificate.
        tls = pools.get("backend_tls") or {}
        reports = []
        for scheme in ("http", "https"):
            targets = [
                http_probe.Target(
                    f"{scheme}://{entry['address']}{pools['pools'][pool_name].get('health_path', '/')}",
                    name=f"{pool_name}/{entry['name']}",
                )
                for pool_name, names in drains + weights
                if bool(pools["pools"][pool_name].get("tls")) == (scheme == "https")
                for entry in pools["pools"][pool_name]["members"]
                if entry["name"] in names
            ]
            if targets:
                try:
                    context = (
                        http_probe.tls_context(
                            ca_path=tls.get("ca") or None,
                            client_cert=tls.get("certificate") or None,
                            client_key=tls.get("key") or None,
                        )
                        if scheme == "https"
                        else None
                    )
                except http_probe.ProbeConfigError as exc:
                    raise LbError(f"The health checks of the https pools {exc}.") from None
                policy = http_probe.Policy(successes=2, deadline=10, interval=0.5, timeout=2)
                reports += http_probe.probe_targets(targets, policy, context)
        failed = {report["name"]: report["last_error"] for report in reports if not report["passed"]}

        def verdict(pool_name, names):
            bad = [f"{name}: {failed[f'{pool_name}/{name}']}" for name in names if f"{pool_name}/{name}" in failed]
            return {"healthy": not bad, "detail": "; ".join(bad) or "answers its health check"}

        return (
            [
                dict({"pool": p, "member": n[0], "lease": state["members"][p][n[0]]["lease"]}, **verdict(p, n))
                for p, n in drains
            ],
            [
                dict(
                    {
                        "pool": p,
                        "label_weights": state["pools"][p]["label_weights"],
                        "lease": state["pools"][p]["label_weights_lease"],
                    },
                    **verdict(p, n),
                )
                for p, n in weights
            ],
        )

    def change(self, params, reload, check_mode):
        """Apply params under the lock; return the result dict for exit_json."""
        with locked(self.lock_path, params.get("lock_timeout", 60)):
            old_pools, state = self.load(params.get("definitions"))
            pools = old_pools if params.get("definitions") is None else params["definitions"]
            expired, expired_w = self.heal(pools, state) if params.get("heal_expired") else ([], [])
            params = dict(
                params,
                heal=[(item["pool"], item["member"]) for item in expired if item["healthy"]],
                heal_weights=[item["pool"] for item in expired_w if item["healthy"]],
            )
            new_state = apply_change(pools, state, params)
            old_text = read_text(self.upstreams_path)
            new_text = render_upstreams(pools)
            old_runtime = read_text(self.runtime_path)
            new_runtime = render_runtime(pools, new_state)
            old_state_text = read_text(self.state_path)
            old_pools_text = read_text(self.pools_path)
            pools_changed = pools != old_pools or old_pools_text is None
            new_state_text = json.dumps(new_state, indent=2, sort_keys=True) + "\n"
            state_changed = new_state != state or old_state_text is None
            upstreams_changed = new_text != old_text
            changed = pools_changed or state_changed or upstreams_changed or new_runtime != old_runtime
            result = {
                "changed": changed,
                "reloaded": False,
                "applied": False,
                "expired_leases": expired,
                "expired_weights": expired_w,
                "state": new_state,
                "members": {
                    name: effective_members(name, pool, new_state) for name, pool in pools.get("pools", {}).items()
                },
                "diff": [
                    {"before_header": path, "after_header": path, "before": before, "after": after}
                    for path, before, after in (
                        (
                            self.pools_path,
                            json.dumps(old_pools, indent=2, sort_keys=True) + "\n",
                            json.dumps(pools, indent=2, sort_keys=True) + "\n",
                        ),
                        (self.state_path, json.dumps(state, indent=2, sort_keys=True) + "\n", new_state_text),
                        (self.upstreams_path, old_text or "", new_text),
                        (self.runtime_path, old_runtime or "", new_runtime),
                    )
                ],
            }
            if check_mode:
                return result
            if not changed:
                result["requests"] = self.requests(pools)
                return result
            saved = [(path, read_text(path)) for path in (self.pools_path, self.state_path, self.runtime_path)]
            if pools_changed:
                atomic_write(self.pools_path, json.dumps(pools, indent=2, sort_keys=True) + "\n")
            if state_changed:
                atomic_write(self.state_path, new_state_text)
            atomic_write(self.runtime_path, new_runtime)
            try:
                result["reloaded"], result["applied"] = self.activate(
                    pools, new_runtime, old_text, new_text if upstreams_changed else None, reload
                )
            except LbError:
                for path, text in saved:
                    restore(path, text)
                raise
            result["requests"] = self.requests(pools)
            return result

    def requests(self, pools):
        """{pool: {member: requests sent to it}} as the balancer counts them since nginx started."""
        if not self.active():
            return {}
        status, document = control_request(pools.get("control_port", DEFAULT_CONTROL_PORT), "GET")
        if status != 200:
            return {}
        return {
            name: {member["name"]: member["requests"] for member in pool.get("members", [])}
            for name, pool in document.get("pools", {}).items()
        }

    def activate(self, pools, runtime, old_upstreams, new_upstreams, reload):
        """Make nginx route by the written files: a reload when the pools changed, else a POST."""
        port = pools.get("control_port", DEFAULT_CONTROL_PORT)
        # The balancer names the file it loaded by its MD5 (ngx.md5); not a security use.
        version = hashlib.md5(runtime.encode("utf-8")).hexdigest()  # noqa: S324
        if new_upstreams is not None:
            atomic_write(self.upstreams_path, new_upstreams)
            valid, output = self.validate()
            if not valid:
                restore(self.upstreams_path, old_upstreams)
                raise LbError(
                    f"nginx rejected the new upstream configuration, so the previous state was restored: {output}"
                )
            if not reload or not self.reload():
                return False, False
            return True, self.apply_runtime(port, version, "GET") is not None
        if not self.active():
            return False, False
        applied = self.apply_runtime(port, version, "POST")
        if applied is None and reload:
            raise LbError(
                f"nginx does not answer on 127.0.0.1:{port}{CONTROL_PATH}, so it cannot take member changes "
                "without a reload; apply the aistack.fleet.nginx_lb role to this host"
            )
        return False, applied is not None
