# Copyright (c) aistack.fleet maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The nginx weights per label that send a given share of the traffic to the canary hosts."""

from __future__ import annotations

from math import gcd

from ansible.errors import AnsibleFilterError

WEIGHT_MAX = 1000


def canary_weights(percent, canary_hosts, stable_hosts, canary_label="canary", stable_label="stable"):
    """Every member of a label gets the label's weight, so the canary share is
    n_c * w_c / (n_c * w_c + n_s * w_s). w_c = p * n_s and w_s = (100 - p) * n_c give p %,
    reduced by their common divisor and scaled into nginx's 1-1000 (0 takes a label out)."""
    try:
        percent, canary_hosts, stable_hosts = int(percent), int(canary_hosts), int(stable_hosts)
    except (TypeError, ValueError):
        raise AnsibleFilterError(
            f"canary_weights: the share and the host counts must be whole numbers, got {percent!r}, "
            f"{canary_hosts!r} and {stable_hosts!r}"
        ) from None
    if not 0 <= percent <= 100 or canary_hosts < 1 or stable_hosts < 1:
        raise AnsibleFilterError(
            f"canary_weights: need a share from 0 to 100 and at least one host of each label, got {percent} % "
            f"of {canary_hosts} canary and {stable_hosts} stable hosts"
        )
    canary, stable = percent * stable_hosts, (100 - percent) * canary_hosts
    divisor = gcd(canary, stable) or 1
    canary, stable = canary // divisor, stable // divisor
    top = max(canary, stable)
    if top > WEIGHT_MAX:
        canary = max(1, round(canary * WEIGHT_MAX / top)) if canary else 0
        stable = max(1, round(stable * WEIGHT_MAX / top)) if stable else 0
    return {canary_label: canary, stable_label: stable}


class FilterModule:
    def filters(self):
        return {"canary_weights": canary_weights}
