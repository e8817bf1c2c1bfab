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
    P(aistack.fleet.nginx_lb#role) role, validates the result with C(nginx -t) and reloads
    nginx gracefully (in-flight requests complete on the old workers).
  - The role writes the pool definitions to C(pools.json) in O(config_dir); this module keeps
    its changes in C(state.json) beside it and renders the upstream include file from both.
    The role never undoes these changes on a later run unless asked to.
  - Calls are serialized per load balancer with a lock file, so many delegated calls at once
    lose no update.
  - When nginx rejects the result, the previous state and upstream file are restored and the
    task fails with nginx's error text.
  - Without O(pool), no backend changes and the upstream file is rendered again from the
    current state (the role does this on every run, with O(definitions)).
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
      - The live side of a blue/green pair. Members whose label (the host variable named by the
        pool's C(label_var), for example C(app_pool)) differs are taken out of rotation;
        members without a label are not affected.
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
        C(keepalive), C(keepalive_timeout) and C(members), a list of C(name), C(address),
        C(weight), C(backup) and C(label).
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
      - Reload nginx after a change. The role sets V(false) and reloads from its handler.
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
      - {"name": "app1", "address": "app1:8000", "label": "blue", "weight": 1, "backup": false, "down": true}
reloaded:
  description:
    - Whether nginx was reloaded. When true, the module returned only after every nginx worker
      that accepts new connections runs the new configuration, so no request arriving later is
      routed by the old one.
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aistack.fleet.plugins.module_utils.nginx_lb import LbError, LoadBalancer  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec={
            "pool": {"type": "str"},
            "member": {"type": "str"},
            "state": {"type": "str", "choices": ["enabled", "drained"]},
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
    try:
        result = LoadBalancer(module, params["config_dir"]).change(params, params["reload"], module.check_mode)
    except LbError as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
