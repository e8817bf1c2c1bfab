# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The connection options of Redis modules (module_utils.redis.REDIS_ARGUMENT_SPEC)."""

    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - The host name or address of the Redis server.
      - The fleet's Redis listens on its fleet address only (and on TLS), so set this to that
        address, or to the name in its certificate, unless the server also listens on loopback.
    type: str
    default: localhost
  login_port:
    description:
      - The port of the Redis server (its TLS port when O(tls) is true).
    type: int
    default: 6379
  login_user:
    description:
      - The ACL user to authenticate as. Without it, O(login_password) is the password of the
        C(default) user (C(requirepass)).
    type: str
  login_password:
    description:
      - The password of O(login_user), or of the C(default) user. Never logged.
    type: str
  tls:
    description:
      - Whether to connect with TLS and verify the server's certificate.
    type: bool
    default: true
  tls_ca_file:
    description:
      - A PEM bundle of the certificate authorities that sign the server's certificate, instead
        of the system's.
    type: path
  tls_cert_file:
    description:
      - A PEM client certificate, for a server that requires one (C(tls-auth-clients yes)).
      - Requires O(tls_key_file).
    type: path
  tls_key_file:
    description:
      - The PEM private key of O(tls_cert_file).
    type: path
  tls_check_hostname:
    description:
      - Whether the server's certificate must name O(login_host).
    type: bool
    default: true
  connect_timeout:
    description:
      - Seconds to wait for the connection to the server.
    type: float
    default: 5.0
requirements:
  - redis (redis-py) 4.3 or later on the host the module runs on (Debian package C(python3-redis))
"""
