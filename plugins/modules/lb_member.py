#!/usr/bin/python
# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lb_member
short_description: Drain, enable, weight and switch the backends of an nginx load balancer
version_added: 0.1.0
description:
  - Changes the desired state of the backends of a load balancer configured by the
    P(aistack.fleet.nginx_lb#role) role without reloading nginx, so no client connection is
    closed. The members of every pool and their state live in nginx's memory (a Lua balancer
    and a shared dictionary); the module writes them to C(runtime.conf) and has nginx load that
    file through a control location on loopback, which checks the whole file before it swaps
    it in. nginx reads the file again when it starts or reloads, so the state survives both.
  - nginx is reloaded only when the set of pools changes, after C(nginx -t) accepted the new
    upstream blocks; the reload is graceful (in-flight requests complete on the old workers).
  - The role writes the pool definitions to C(pools.json) in O(config_dir); this module keeps
    its changes in C(state.json) beside it and renders the upstream include file and the
    run-time file from both. The role never undoes these changes on a later run unless asked to.
  - A drain may be a lease (O(lease_ttl), O(lease_owner)) that the draining run renews. When
    the run dies, the load balancer itself puts the member back once the lease has passed and
    the member answered its pool's health path twice; the next call with O(heal_expired) reports
    the expired lease and, after the same health check, records the member as enabled.
  - Calls are serialized per load balancer with a lock file, so many delegated calls at once
    lose no update.
  - When nginx rejects the result, the previous files are restored (nginx keeps routing by the
    state it had) and the task fails with nginx's error text.
  - Without O(pool), no backend changes and the files are rendered again from the current
    state (the role does this on every run, with O(definitions)).
author:
  - aistack.fleet maintainers (@aistack)
options:
  pool:
    description:
      - The upstream pool to change, as named in the role's C(nginx_lb_pools).
    type: str
  member:
    description:
      - The backend to change, by inventory name or by address (C(host:port)) as written in the pool.
      - Required by O(state), O(weight) and O(backup).
    type: str
  state:
    description:
      - V(drained) takes the member out of rotation (C(down)); new requests go elsewhere while
        in-flight requests complete. V(enabled) brings it back.
    type: str
    choices: [enabled, drained]
  lease_ttl:
    description:
      - With O(state=drained), the drain lasts this many seconds unless renewed by calling the
        module again with the same O(lease_owner). Without it a drain lasts until the member is
        enabled.
      - With O(label_weights), the weights are a lease too. Once it has passed, members the
        weights gave no traffic (V(0)) return like a drain whose lease expired, and the next call
        with O(heal_expired) gives every member its own weight again.
      - A drain or label weights held by another owner whose lease has not expired make the call
        fail, so two runs cannot take the same member or pool.
    type: int
  lease_owner:
    description:
      - Who holds the drain's lease, for example the run's identifier.
    type: str
    default: ""
  keep_serving:
    description:
      - With O(state=drained), refuse the drain when no other member of the pool (backups not
        counted) would be left in rotation, so a procedure cannot take the last serving member out.
    type: bool
    default: false
  heal_expired:
    description:
      - Before the change, check every member whose drain lease has expired with two GETs of its
        pool's health path and enable those that answer 200; the others stay drained. Both are
        reported in RV(expired_leases).
      - Label weights whose lease has expired are removed the same way (after a health check of
        the members they gave no traffic) and reported in RV(expired_weights).
    type: bool
    default: false
  weight:
    description:
      - The member's weight, from 1 to 1000. It takes precedence over O(label_weights).
    type: int
  backup:
    description:
      - Whether the member only receives traffic when every other member is unavailable.
    type: bool
  active_label:
    description:
      - The live side of a blue/green pair. Members whose label under the same variable (one of
        the host variables named by the pool's C(label_var), for example C(app_pool)) differs
        are taken out of rotation; members without that variable are not affected.
      - An empty string makes every side live again.
    type: str
  label_weights:
    description:
      - Weights per label, for a stable/canary pair (for example V(stable=90) and V(canary=10)).
        Every member with that label gets the weight; V(0) takes them out of rotation.
    type: dict
  definitions:
    description:
      - The pool definitions, as the nginx_lb role resolves them from the inventory. The key
        C(pools) maps each pool name to its C(method), C(max_fails), C(fail_timeout),
        C(keepalive), C(keepalive_timeout), C(health_path) and C(members), a list of C(name),
        C(address), C(weight), C(backup) and C(labels) (variable to value); C(control_port)
        is the port of nginx's loopback control location.
      - The role passes them on every run; they are written to C(pools.json) together with the
        upstream file, and both are restored when nginx rejects the result.
    type: dict
  config_dir:
    description:
      - The directory where the role keeps the load balancer's pools, state and upstream file.
    type: path
    default: /etc/nginx/aistack
  reload:
    description:
      - Reload nginx when the pools changed. The role sets V(false) and reloads from its handler.
        Member changes never need a reload.
    type: bool
    default: true
  lock_timeout:
    description:
      - Seconds to wait for other lb_member runs on the same load balancer.
    type: int
    default: 60
notes:
  - Run it on the load balancer, usually with C(delegate_to) from a play over the backends.
seealso:
  - name: nginx upstream module
    description: The server parameters this module sets.
    link: https://nginx.org/en/docs/http/ngx_http_upstream_module.html
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reports the change and its diff without writing files or reloading nginx.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode) when in diff mode.
    support: full
"""

EXAMPLES = r"""
- name: Drain this backend on every load balancer
  aistack.fleet.lb_member:
    pool: app
    member: "{{ inventory_hostname }}"
    state: drained
  delegate_to: "{{ item }}"
  loop: "{{ groups['lb'] }}"

- name: Drain it for at most two minutes unless this run renews the lease
  aistack.fleet.lb_member:
    pool: app
    member: "{{ inventory_hostname }}"
    state: drained
    lease_ttl: 120
    lease_owner: deploy-20261201T2300
  delegate_to: "{{ item }}"
  loop: "{{ groups['lb'] }}"

- name: Report drains whose run died and put back the members that answer
  aistack.fleet.lb_member:
    heal_expired: true
  delegate_to: "{{ item }}"
  loop: "{{ groups['lb'] }}"

- name: Bring it back with a lower weight
  aistack.fleet.lb_member:
    pool: app
    member: "{{ inventory_hostname }}"
    state: enabled
    weight: 2
  delegate_to: "{{ item }}"
  loop: "{{ groups['lb'] }}"

- name: Switch the blue/green pair to green
  aistack.fleet.lb_member:
    pool: app
    active_label: green

- name: Send about a tenth of the traffic to the canary
  aistack.fleet.lb_member:
    pool: app
    label_weights:
      stable: 9
      canary: 1
"""

RETURN = r"""
state:
  description: The recorded state of the load balancer after the change.
  returned: always
  type: dict
  sample: {"members": {"app": {"app1": {"state": "drained"}}}, "pools": {"app": {"active_label": "blue"}}}
members:
  description: Every pool's members as nginx sees them after the change.
  returned: always
  type: dict
  sample:
    app:
      - {"name": "app1", "address": "app1:8000", "label": "blue", "labels": {"app_pool": "blue"}, "weight": 1,
         "backup": false, "down": true, "lease_expires": 1796169391, "lease_owner": "deploy-1"}
reloaded:
  description:
    - Whether nginx was reloaded (only when the pools changed). When true, the module returned
      only after every nginx worker that accepts new connections runs the new configuration.
  returned: always
  type: bool
  sample: false
applied:
  description:
    - Whether nginx routes by the new state when the module returns (it confirmed the version of
      the file it loaded). False when nginx is not running or not yet configured for it; it
      loads the file when it starts or reloads.
  returned: always
  type: bool
  sample: true
requests:
  description:
    - Requests the balancer sent to each member since nginx started (every try counts), per
      pool; the difference between two calls is the traffic in between. Empty when nginx is not
      running.
  returned: unless check mode
  type: dict
  sample: {"app": {"app1": 1520, "app2": 1519, "app3": 80}}
expired_leases:
  description: With O(heal_expired), the drains whose lease had expired and what the health check found.
  returned: always
  type: list
  elements: dict
  sample:
    - {"pool": "app", "member": "app1", "lease": {"owner": "deploy-1", "expires": 1796169391},
       "healthy": true, "detail": "answers its health check"}
expired_weights:
  description: With O(heal_expired), the label weights whose lease had expired and what the health check found.
  returned: always
  type: list
  elements: dict
  sample:
    - {"pool": "app", "label_weights": {"canary": 1, "stable": 19},
       "lease": {"owner": "deploy-1", "expires": 1796169391}, "healthy": true, "detail": "answers its health check"}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aistack.fleet.plugins.module_utils.nginx_lb import LbError, LoadBalancer  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec={
            "pool": {"type": "str"},
            "member": {"type": "str"},
            "state": {"type": "str", "choices": ["enabled", "drained"]},
            "lease_ttl": {"type": "int"},
            "lease_owner": {"type": "str", "default": ""},
            "keep_serving": {"type": "bool", "default": False},
            "heal_expired": {"type": "bool", "default": False},
            "weight": {"type": "int"},
            "backup": {"type": "bool"},
            "active_label": {"type": "str"},
            "label_weights": {"type": "dict"},
            "definitions": {"type": "dict"},
            "config_dir": {"type": "path", "default": "/etc/nginx/aistack"},
            "reload": {"type": "bool", "default": True},
            "lock_timeout": {"type": "int", "default": 60},
        },
        required_by={"member": "pool", "active_label": "pool", "label_weights": "pool"},
        supports_check_mode=True,
    )
    params = dict(module.params)
    for option in ("state", "weight", "backup"):
        if params[option] is not None and params["member"] is None:
            module.fail_json(msg=f"The option '{option}' changes one backend: name it with 'member'.")
    if params["lease_ttl"] is not None and (
        (params["state"] != "drained" and not params["label_weights"]) or params["lease_ttl"] < 1
    ):
        module.fail_json(
            msg="lease_ttl is the length of a drain or of label weights in seconds: use it with state=drained "
            "or label_weights, at least 1."
        )
    try:
        result = LoadBalancer(module, params["config_dir"]).change(params, params["reload"], module.check_mode)
    except LbError as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
