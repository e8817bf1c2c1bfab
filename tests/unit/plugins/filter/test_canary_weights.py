"""The weights that give the canary hosts their share of the traffic."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.aistack.fleet.plugins.filter.canary_weights import canary_weights


def share(weights, canary_hosts, stable_hosts):
    canary, stable = weights["canary"] * canary_hosts, weights["stable"] * stable_hosts
    return 100 * canary / (canary + stable)


@pytest.mark.parametrize("percent", [1, 5, 25, 50, 99])
@pytest.mark.parametrize(("canary_hosts", "stable_hosts"), [(1, 2), (1, 1), (2, 7), (3, 40), (1, 20)])
def test_weights_give_the_share(percent, canary_hosts, stable_hosts):
    weights = canary_weights(percent, canary_hosts, stable_hosts)
    assert 1 <= weights["canary"] <= 1000 and 1 <= weights["stable"] <= 1000, weights
    assert share(weights, canary_hosts, stable_hosts) == pytest.approx(percent, abs=1)


def test_weights_are_reduced():
    assert canary_weights(5, 1, 2) == {"canary": 2, "stable": 19}
    assert canary_weights(50, 1, 1) == {"canary": 1, "stable": 1}


def test_all_or_nothing_takes_a_label_out():
    assert canary_weights(100, 1, 2, "c", "s") == {"c": 1, "s": 0}
    assert canary_weights(0, 1, 2) == {"canary": 0, "stable": 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [((101, 1, 1), "from 0 to 100"), ((5, 0, 1), "at least one host"), (("x", 1, 1), "whole numbers")],
)
def test_bad_input_is_refused(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        canary_weights(*args)
