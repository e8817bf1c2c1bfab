# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Redis connection of modules: argument spec (the aistack.fleet.redis doc fragment) and client.

The client itself is made by module_utils/redis_snapshot.py's connect(), which the snapshot
script on the Redis hosts uses too; this file adds the Ansible side (missing_required_lib).
"""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.aistack.fleet.plugins.module_utils.redis_snapshot import (
    HAS_REDIS,
    REDIS_IMPORT_ERROR,
    SnapshotError,
    connect,
)

REDIS_ARGUMENT_SPEC = {
    "login_host": {"type": "str", "default": "localhost"},
    "login_port": {"type": "int", "default": 6379},
    "login_user": {"type": "str"},
    "login_password": {"type": "str", "no_log": True},
    "tls": {"type": "bool", "default": True},
    "tls_ca_file": {"type": "path"},
    "tls_cert_file": {"type": "path"},
    "tls_key_file": {"type": "path"},
    "tls_check_hostname": {"type": "bool", "default": True},
    "connect_timeout": {"type": "float", "default": 5.0},
}

REDIS_REQUIRED_TOGETHER = [["tls_cert_file", "tls_key_file"]]


def connection_params(params):
    """The connection options of the module parameters, as connect() takes them."""
    return {name: params[name] for name in REDIS_ARGUMENT_SPEC}


def require_redis(module):
    """Fail the module with Ansible's sentence when redis-py is missing on the managed host."""
    if not HAS_REDIS:
        module.fail_json(msg=missing_required_lib("redis (Debian package python3-redis)"), exception=REDIS_IMPORT_ERROR)


def redis_client(module):
    """A redis.Redis for the module's connection options (no command is sent yet)."""
    require_redis(module)
    try:
        return connect(connection_params(module.params))
    except SnapshotError as exc:
        module.fail_json(msg=str(exc))
