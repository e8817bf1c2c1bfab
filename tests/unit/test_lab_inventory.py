"""The lab inventory honours the fleet's group contract and stays within one machine."""

import json
import re

import pytest

from tests.conftest import run

FLEET_GROUPS = ("lb", "app", "redis", "mongodb", "opensearch", "monitoring")
UNITS = {"k": 2**10, "m": 2**20, "g": 2**30}


@pytest.fixture(scope="module")
def inventory():
    proc = run(["ansible-inventory", "-i", "inventories/lab", "--list"], check=True)
    return json.loads(proc.stdout)


def hostvars(inventory):
    return inventory["_meta"]["hostvars"]


def members(inventory, group):
    return inventory.get(group, {}).get("hosts", [])


@pytest.mark.parametrize("group", FLEET_GROUPS)
def test_every_fleet_group_has_hosts_inside_the_lab(inventory, group):
    lab_hosts = set(hostvars(inventory))
    assert members(inventory, group), f"group {group} is empty"
    assert set(members(inventory, group)) <= lab_hosts


def test_blue_green_and_canary_can_be_run(inventory):
    app = {h: hostvars(inventory)[h] for h in members(inventory, "app")}
    assert len(app) >= 3
    assert {v["app_pool"] for v in app.values()} == {"blue", "green"}
    assert {v["app_track"] for v in app.values()} == {"stable", "canary"}


def test_ports_are_published_on_loopback_only(inventory):
    published = {h: v.get("lab_published_ports", []) for h, v in hostvars(inventory).items()}
    for host, ports in published.items():
        for spec in ports:
            assert spec.startswith("127.0.0.1:"), f"{host} publishes {spec} beyond 127.0.0.1"
    lb_ports = {spec.rsplit(":", 1)[1] for h in members(inventory, "lb") for spec in published[h]}
    assert {"80", "443"} <= lb_ports


def test_the_lab_fits_a_two_core_24_gib_machine(inventory):
    total = 0
    for host, values in hostvars(inventory).items():
        size = re.fullmatch(r"(\d+)([kmg])", str(values.get("lab_memory", "")))
        assert size, f"{host} has no memory limit (lab_memory)"
        total += int(size[1]) * UNITS[size[2]]
    assert total <= 16 * 2**30, f"the lab asks for {total / 2**30:.1f} GiB; keep 8 GiB for the machine itself"
    for host, values in hostvars(inventory).items():
        assert values["ansible_connection"] == "community.docker.docker", host
