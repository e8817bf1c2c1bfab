#!/usr/bin/python
# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_snapshot
short_description: Create, list, prune, delete and restore Redis snapshots with checksums
version_added: 0.1.0
description:
  - Takes consistent snapshots of a Redis server (its RDB file, and a copy of its AOF directory when
    AOF is on) into O(backup_dir), each with a manifest of what was saved and the SHA-256 of every file;
    lists, prunes by age and count, deletes, and restores them after verifying every checksum.
  - A snapshot is the directory C(<backup_dir>/<name>/) with C(dump.rdb), C(appendonlydir/) and
    C(manifest.json) (C(name), C(created), C(created_epoch), C(host), C(redis_version), C(role),
    C(master_repl_offset), C(keys), C(expires), C(keys_per_db), C(aof_enabled) and C(files), each file's
    C(sha256) and C(size)). It is written in C(<name>.partial/) and renamed when complete, so an
    interrupted snapshot never looks complete.
  - The same code runs on the Redis hosts without Ansible, from a systemd timer (the
    P(aistack.fleet.redis#role) role installs it), as
    C(python3 redis_snapshot.py --config snapshot.json scheduled) (create, then prune); the JSON file
    holds this module's options. Every Redis host has the timer, but only the primary takes a snapshot;
    on a node whose C(INFO replication) role is not C(master), C(scheduled) skips create and still prunes.
  - Run it on the Redis host itself, because create and restore read and write O(data_dir).
  - Restore on the primary; its replicas then resynchronize from it. A replica restored alone would
    replace its data with the primary's at its next synchronization.
  - On a primary that Redis Sentinels watch, restore through the P(aistack.fleet.redis#role) role's
    C(restore) entry point (included with C(tasks_from) set to C(restore), or the playbook
    C(aistack.fleet.redis_restore)), which stops the Sentinels around the restore. This module alone
    stops only O(service); the Sentinels would then fail the stopped primary over to a replica.
author:
  - aistack.fleet maintainers (@aistack)
extends_documentation_fragment:
  - aistack.fleet.redis
options:
  operation:
    description:
      - V(create) runs a C(BGSAVE) of its own (after waiting for one already in progress), waits until it
        has finished well, and copies the RDB and the AOF directory with the keys and replication offset
        counted at the moment of the C(BGSAVE).
      - V(list) reports the complete snapshots, newest first, and the incomplete or corrupt ones apart
        (checked by manifest and file sizes; V(restore) also checks every SHA-256).
      - V(prune) deletes the complete snapshots older than O(retention_max_age) except the newest
        O(retention_keep), and C(.partial) directories of interrupted snapshots older than 24 hours.
        Corrupt snapshots are reported and left for an operator.
      - V(delete) removes the snapshot O(name) (complete or not); an absent one changes nothing.
      - V(restore) first verifies the manifest, the size and SHA-256 of every file and that C(dump.rdb)
        is there, and refuses a damaged snapshot before anything is stopped. Then it stops O(service),
        moves the current RDB and AOF directory to C(<data_dir>/pre-restore-<UTC time>/) (never deleted),
        puts the snapshot's RDB in place with the owner of O(data_dir), starts the service, waits until
        Redis has loaded and answers, and checks that it holds the snapshot's number of keys.
      - With AOF on, restore also writes a new AOF directory whose base is the snapshot's RDB. Redis
        7.0 started with C(appendonly yes) loads only the AOF; with the old AOF it would bring the replaced
        data back, and without an AOF directory it starts empty.
    type: str
    required: true
    choices: [create, list, prune, delete, restore]
  backup_dir:
    description:
      - The directory that holds the snapshots, created (mode 0700) by the first V(create).
    type: path
    required: true
  data_dir:
    description:
      - The directory of the server's RDB and AOF files (its C(dir) setting). When the server allows
        C(CONFIG GET), create and restore refuse a value that differs from the server's.
    type: path
    default: /var/lib/redis
  dbfilename:
    description:
      - The RDB file name in O(data_dir) (the server's C(dbfilename)).
    type: str
    default: dump.rdb
  appenddirname:
    description:
      - The AOF directory name in O(data_dir) (the server's C(appenddirname)).
    type: str
    default: appendonlydir
  service:
    description:
      - The systemd unit that restore stops and starts.
    type: str
    default: redis-server
  name:
    description:
      - The snapshot's name. V(delete) requires it; V(restore) takes the newest complete snapshot without it.
      - V(create) names the snapshot after its UTC time (V(20250101T020000Z)) without it; with a name that
        exists already, it changes nothing.
      - Letters, digits, C(.), C(_) and C(-), up to 128 characters.
    type: str
  retention_max_age:
    description:
      - Hours after which V(prune) deletes a complete snapshot (by its manifest's creation time), unless it
        is one of the newest O(retention_keep). The default is a week.
    type: int
    default: 168
  retention_keep:
    description:
      - How many of the newest complete snapshots V(prune) always keeps, whatever their age. At least 1.
    type: int
    default: 3
  timeout:
    description:
      - Seconds to wait for a C(BGSAVE) (one in progress and ours), and after a restore for Redis to load
        its data and answer.
    type: int
    default: 300
notes:
  - The unit tests replace the service stop and start by a local C(redis-server) process; the
    systemd path is exercised by the fleet's molecule scenario.
  - Keys with a TTL may expire between the snapshot and the restore; the restore's key check allows
    for at most the snapshot's C(expires) fewer keys.
seealso:
  - name: Redis persistence
    description: RDB and AOF, and the multi part AOF of Redis 7.
    link: https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - V(create) connects and reports the name it would use without a C(BGSAVE) or any file written.
      - V(restore) verifies every checksum and reports what it would do without stopping anything.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode) when in diff mode.
    support: full
    details:
      - V(create), V(prune) and V(delete) show the snapshot names before and after, V(restore) the snapshot
        and the key count.
"""

EXAMPLES = r"""
# The settings of the aistack.fleet.redis role: snapshots in /srv/backups/redis, TLS with the CA
# of the base role's PKI, the ACL user admin, and Redis listening on the host's fleet address.
- name: Take a snapshot of the Redis primary
  aistack.fleet.redis_snapshot:
    operation: create
    backup_dir: /srv/backups/redis
    login_host: "{{ ansible_facts.default_ipv4.address }}"
    login_user: admin
    login_password: "{{ redis_admin_password }}"
    tls_ca_file: /etc/aistack/pki/ca.crt
  register: redis_backup
  no_log: true

- name: List the snapshots
  aistack.fleet.redis_snapshot:
    operation: list
    backup_dir: /srv/backups/redis
  register: redis_snapshots

- name: Keep two days of snapshots, and at least five
  aistack.fleet.redis_snapshot:
    operation: prune
    backup_dir: /srv/backups/redis
    retention_max_age: 48
    retention_keep: 5

# On a primary that Sentinels watch, restore through the role instead (the playbook
# aistack.fleet.redis_restore, or include_role name=aistack.fleet.redis tasks_from=restore):
# it stops the Sentinels around the restore, and without that the Sentinels would fail the
# stopped primary over to a replica. This task alone suits a Redis without Sentinel.
- name: Restore the newest complete snapshot
  aistack.fleet.redis_snapshot:
    operation: restore
    backup_dir: /srv/backups/redis
    login_host: "{{ ansible_facts.default_ipv4.address }}"
    login_user: admin
    login_password: "{{ redis_admin_password }}"
    tls_ca_file: /etc/aistack/pki/ca.crt
  no_log: true

# In a play on every host of the Redis group (the primary, its replicas and their Sentinels):
- name: Restore the Redis tier from a snapshot, with the Sentinels stopped around it
  ansible.builtin.include_role:
    name: aistack.fleet.redis
    tasks_from: restore
  vars:
    redis_restore_snapshot: 20250101T020000Z
"""

RETURN = r"""
snapshot:
  description: The manifest of the snapshot created (in check mode only its C(name)).
  returned: operation is create
  type: dict
  sample:
    name: 20250101T020000Z
    created: "2025-01-01T02:00:00+00:00"
    created_epoch: 1735696800.2
    host: redis1
    redis_version: 7.0.15
    role: master
    master_repl_offset: 48213
    aof_enabled: true
    keys: 1200
    expires: 30
    keys_per_db: {"db0": 1200}
    files: {"dump.rdb": {"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "size": 81234}}
snapshots:
  description: The complete snapshots, newest first, each its manifest with C(path) and C(size) (bytes in total).
  returned: operation is list
  type: list
  elements: dict
incomplete:
  description: Snapshot directories that are not complete or are damaged, with the reason.
  returned: operation is list or prune
  type: list
  elements: dict
  sample: [{"name": "20250101T020000Z.partial", "reason": "interrupted: this snapshot was never finished"}]
deleted:
  description: The snapshots deleted (in check mode, that would be).
  returned: operation is prune or delete
  type: list
  elements: str
  sample: ["20241220T020000Z"]
deleted_partial:
  description: The C(.partial) directories of interrupted snapshots deleted (older than 24 hours).
  returned: operation is prune
  type: list
  elements: str
kept:
  description: The complete snapshots that prune kept, newest first.
  returned: operation is prune
  type: list
  elements: str
restored:
  description: The name of the snapshot restored (or that would be).
  returned: operation is restore
  type: str
  sample: 20250101T020000Z
keys:
  description: The keys Redis holds after the restore (in check mode, the snapshot's count).
  returned: operation is restore
  type: int
  sample: 1200
previous_data:
  description: Where the RDB and AOF directory that the restore replaced were moved (or would be).
  returned: operation is restore
  type: str
  sample: /var/lib/redis/pre-restore-20250102T101500Z
aof_rebuilt:
  description: Whether restore wrote a new AOF directory from the snapshot's RDB (AOF is on).
  returned: operation is restore
  type: bool
msg:
  description: What was done, in one sentence.
  returned: when there is something to say
  type: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aistack.fleet.plugins.module_utils.redis import (  # noqa: E402
    REDIS_ARGUMENT_SPEC,
    REDIS_REQUIRED_TOGETHER,
    require_redis,
)
from ansible_collections.aistack.fleet.plugins.module_utils.redis_snapshot import (  # noqa: E402
    OPERATIONS,
    SnapshotError,
    run,
)

ARGUMENT_SPEC = {
    "operation": {"type": "str", "required": True, "choices": list(OPERATIONS)},
    "backup_dir": {"type": "path", "required": True},
    "data_dir": {"type": "path", "default": "/var/lib/redis"},
    "dbfilename": {"type": "str", "default": "dump.rdb"},
    "appenddirname": {"type": "str", "default": "appendonlydir"},
    "service": {"type": "str", "default": "redis-server"},
    "name": {"type": "str"},
    "retention_max_age": {"type": "int", "default": 168},
    "retention_keep": {"type": "int", "default": 3},
    "timeout": {"type": "int", "default": 300},
    **REDIS_ARGUMENT_SPEC,
}

# The stop and start of restore; the unit tests put a local redis-server process here.
SERVICE = None


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("operation", "delete", ["name"])],
        required_together=REDIS_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    operation = module.params["operation"]
    if operation in ("create", "restore"):
        require_redis(module)
    params = {key: value for key, value in module.params.items() if key != "operation"}
    try:
        result = run(params, operation, check_mode=module.check_mode, service=SERVICE)
    except SnapshotError as exc:
        module.fail_json(msg=str(exc))
    diff = result.pop("diff", None)
    if module._diff and diff is not None:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
