# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The TLS options of modules that make HTTPS requests (module_utils.http_probe.TLS_ARGUMENT_SPEC)."""

    DOCUMENTATION = r"""
options:
  validate_certs:
    description:
      - Whether to verify the certificate and host name of C(https://) URLs.
    type: bool
    default: true
  ca_path:
    description:
      - A PEM bundle of the certificate authorities to trust for C(https://) URLs, instead of the system's.
    type: path
  client_cert:
    description:
      - A PEM client certificate to present to C(https://) URLs (mutual TLS).
      - May also hold the private key; otherwise set O(client_key).
    type: path
  client_key:
    description:
      - The PEM private key of O(client_cert).
    type: path
"""
