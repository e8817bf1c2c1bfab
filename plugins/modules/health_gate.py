#!/usr/bin/python
# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: health_gate
short_description: Wait until HTTP endpoints answer well several times in a row, or fail naming them
version_added: 0.1.0
description:
  - Probes every target at the same time, one thread each, with C(GET) requests.
  - A target passes once it has answered well O(successes) times in a row. An answer is good
    when its status code is one of the expected ones and, when JSON assertions are given,
    every assertion holds on the JSON body.
  - The gate passes when every target has passed within O(deadline) seconds. Otherwise it
    fails with a short summary that names each failing target and its last answer (for a
    JSON assertion, the value actually found).
  - Uses only the Python standard library for HTTP, so the host it runs on (often the one it
    is delegated to) needs nothing installed, except C(jmespath) for JSON assertions.
  - The probes change nothing, so the module reports C(changed=false) and runs them in
    check mode too.
author:
  - aistack.fleet maintainers (@aistack)
extends_documentation_fragment:
  - aistack.fleet.tls_client
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The probes are read-only, so check mode runs them and returns the same verdict.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode) when in diff mode.
    support: none
options:
  targets:
    description:
      - The endpoints to probe.
    type: list
    elements: dict
    required: true
    suboptions:
      url:
        description:
          - The C(http://) or C(https://) URL to request.
        type: str
        required: true
      name:
        description:
          - The target's name in the report and the failure summary, for example the inventory host.
          - Defaults to O(targets[].url).
        type: str
      status_codes:
        description:
          - Status codes that count as good for this target, instead of O(status_codes).
        type: list
        elements: int
      json_assertions:
        description:
          - JSON assertions for this target, instead of O(json_assertions).
        type: list
        elements: dict
        suboptions:
          path:
            description:
              - A JMESPath expression evaluated on the JSON body.
            type: str
            required: true
          equals:
            description:
              - The value the expression must have.
              - When omitted, the expression's value must be true-ish (non-empty and not false).
            type: raw
      headers:
        description:
          - Request headers for this target, added to (and overriding) O(headers).
          - Their values are never shown in the output (headers often carry C(Authorization)).
        type: dict
  status_codes:
    description:
      - Status codes that count as good, for targets that do not set their own.
    type: list
    elements: int
    default: [200]
  json_assertions:
    description:
      - Assertions on the JSON body that must all hold for an answer to count as good, for
        targets that do not set their own.
      - An answer whose body is not JSON is not good when there are assertions.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - A JMESPath expression evaluated on the JSON body, for example C(status) or
            C(checks.redis.ok).
        type: str
        required: true
      equals:
        description:
          - The value the expression must have.
          - When omitted, the expression's value must be true-ish (non-empty and not false),
            for example with C(status == 'ready').
        type: raw
  headers:
    description:
      - Request headers sent to every target, for example C(Host) when probing through a load balancer.
      - Their values are never shown in the output (headers often carry C(Authorization)), so a
        value that also appears elsewhere in the result, such as a host name, shows as V(********) there too.
    type: dict
    default: {}
  successes:
    description:
      - How many good answers in a row make a target pass.
    type: int
    default: 3
  deadline:
    description:
      - Seconds, from the start, within which every target must pass.
    type: float
    default: 60
  interval:
    description:
      - Seconds between two requests to the same target.
    type: float
    default: 1
  timeout:
    description:
      - Seconds one request may take; it is also cut to the time left before O(deadline).
    type: float
    default: 5
requirements:
  - jmespath, only when JSON assertions are used
notes:
  - Redirects are not followed; a C(3xx) answer is judged by O(status_codes) like any other.
  - Proxy settings of the environment are not used; targets are reached directly.
"""

EXAMPLES = r"""
- name: Wait until this app host is ready, as seen from the first load balancer
  aistack.fleet.health_gate:
    targets:
      - name: "{{ inventory_hostname }}"
        url: "http://{{ ansible_host }}:8000/ready"
    successes: 3
    deadline: 120
  delegate_to: "{{ groups['lb'][0] }}"

- name: Gate a canary through the load balancer, over HTTPS with the internal CA
  aistack.fleet.health_gate:
    targets:
      - name: lb1
        url: https://lb1.example.net/ready
      - name: canary app1
        url: https://app1.example.net:8443/version
        json_assertions:
          - path: version
            equals: "{{ app_version }}"
    headers:
      Host: api.example.net
    json_assertions:
      - path: status
        equals: ready
      - path: "checks.*.ok | !contains(@, `false`)"
    ca_path: /etc/aistack/pki/ca.pem
    client_cert: /etc/aistack/pki/probe.pem
    client_key: /etc/aistack/pki/probe.key
  delegate_to: localhost

- name: Accept a maintenance page while a release is switched
  aistack.fleet.health_gate:
    targets:
      - url: http://127.0.0.1:8000/health
    status_codes: [200, 503]
    successes: 1
    deadline: 10
"""

RETURN = r"""
passed:
  description: Whether every target passed.
  returned: always
  type: bool
  sample: false
msg:
  description: A one-line summary; on failure it names every failing target and its last answer.
  returned: always
  type: str
  sample: >-
    1 of 2 targets did not answer as expected 3 times in a row within 60s:
    app2 (http://10.0.0.2:8000/ready): HTTP 503, expected 200 (after 60 attempts)
targets:
  description: One report per target, in the order of O(targets).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The target's name.
      type: str
      sample: app2
    url:
      description: The URL probed.
      type: str
      sample: http://10.0.0.2:8000/ready
    passed:
      description: Whether the target answered well O(successes) times in a row in time.
      type: bool
      sample: false
    attempts:
      description: How many requests were made.
      type: int
      sample: 60
    consecutive_successes:
      description: Good answers in a row at the end.
      type: int
      sample: 0
    last_status:
      description: The status code of the last answer, null when there was none.
      type: int
      sample: 503
    last_error:
      description: Why the last answer was not good, null when it was.
      type: str
      sample: "JSON status is \"starting\", expected \"ready\""
    latency_ms:
      description: How long the last request took, in milliseconds.
      type: float
      sample: 3.2
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

from ansible_collections.aistack.fleet.plugins.module_utils.http_probe import (  # noqa: E402
    HAS_JMESPATH,
    JMESPATH_IMPORT_ERROR,
    TLS_ARGUMENT_SPEC,
    JsonAssertion,
    Policy,
    ProbeConfigError,
    Target,
    probe_targets,
    summarize,
    tls_context,
)

ASSERTION_SPEC = {"path": {"type": "str", "required": True}, "equals": {"type": "raw"}}

ARGUMENT_SPEC = {
    "targets": {
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": {
            "url": {"type": "str", "required": True},
            "name": {"type": "str"},
            "status_codes": {"type": "list", "elements": "int"},
            "json_assertions": {"type": "list", "elements": "dict", "options": ASSERTION_SPEC},
            "headers": {"type": "dict", "no_log": True},
        },
    },
    "status_codes": {"type": "list", "elements": "int", "default": [200]},
    "json_assertions": {"type": "list", "elements": "dict", "default": [], "options": ASSERTION_SPEC},
    "headers": {"type": "dict", "default": {}, "no_log": True},
    "successes": {"type": "int", "default": 3},
    "deadline": {"type": "float", "default": 60},
    "interval": {"type": "float", "default": 1},
    "timeout": {"type": "float", "default": 5},
    **TLS_ARGUMENT_SPEC,
}


def build_targets(params):
    """Targets from the module parameters, each falling back to the gate-wide settings."""
    targets = []
    for spec in params["targets"]:
        assertions = spec["json_assertions"] if spec["json_assertions"] is not None else params["json_assertions"]
        targets.append(
            Target(
                spec["url"],
                name=spec["name"],
                status_codes=spec["status_codes"] or params["status_codes"],
                assertions=[JsonAssertion(item["path"], item["equals"]) for item in assertions],
                headers={**params["headers"], **(spec["headers"] or {})},
            )
        )
    return targets


def check_params(module):
    """Refuse settings that cannot work, before any request is made."""
    params = module.params
    if not params["targets"]:
        module.fail_json(msg="targets is empty: give at least one URL to probe")
    if params["successes"] < 1 or params["deadline"] <= 0 or params["interval"] < 0 or params["timeout"] <= 0:
        module.fail_json(msg="successes must be at least 1, deadline and timeout above 0 and interval not negative")
    uses_json = params["json_assertions"] or any(spec["json_assertions"] for spec in params["targets"])
    if uses_json and not HAS_JMESPATH:
        module.fail_json(msg=missing_required_lib("jmespath"), exception=JMESPATH_IMPORT_ERROR)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_by={"client_key": "client_cert"},
    )
    check_params(module)
    params = module.params
    try:
        targets = build_targets(params)
        context = tls_context(**{name: params[name] for name in TLS_ARGUMENT_SPEC})
    except ProbeConfigError as exc:
        module.fail_json(msg=str(exc))
    policy = Policy(params["successes"], params["deadline"], params["interval"], params["timeout"])
    reports = probe_targets(targets, policy, context)
    result = {
        "changed": False,
        "passed": all(report["passed"] for report in reports),
        "msg": summarize(reports, policy),
        "targets": reports,
    }
    if not result["passed"]:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
