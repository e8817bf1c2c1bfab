"""The lab fleet's life cycle on the real Docker engine: up, reach every host, down.

The tests run in file order: up (twice, the second changes nothing), checks on the running
fleet, then down, which must leave no container, network or volume of the lab behind and
must not touch anything else on the engine.
"""

import json
import os
import shutil

import pytest
import testinfra
import yaml

from tests.conftest import ROOT, run

LABEL = "io.aistack.lab=aistack-lab"


def docker_names(kind, *filters):
    argv = ["docker", kind, "ls", "--format", "{{.Name}}" if kind != "container" else "{{.Names}}"]
    if kind == "container":
        argv.insert(3, "-a")
    for f in filters:
        argv += ["--filter", f]
    return set(run(argv, check=True).stdout.split())


def lab_inventory():
    data = json.loads(run(["ansible-inventory", "-i", "inventories/lab", "--list"], check=True).stdout)
    return data


@pytest.fixture(scope="module")
def unrelated():
    """A volume and a network that are not the lab's: down must leave them alone."""
    name = f"aistack-unrelated-{os.getpid()}"
    run(["docker", "volume", "create", name], check=True)
    run(["docker", "network", "create", name], check=True)
    yield name
    run(["docker", "volume", "rm", name])
    run(["docker", "network", "rm", name])


@pytest.fixture(scope="module")
def lab(unrelated):
    inventory = lab_inventory()
    yield inventory
    run(["ansible-playbook", "playbooks/lab/down.yml"])


def test_up_without_an_engine_says_so_in_one_sentence():
    proc = run(["ansible-playbook", "playbooks/lab/up.yml"], env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode != 0
    assert "No Docker engine answers at unix:///nonexistent/docker.sock: run 'make engine'" in proc.output
    assert "Traceback" not in proc.output


def test_up_creates_the_fleet_and_is_idempotent(lab):
    run(["ansible-playbook", "playbooks/lab/up.yml"], check=True)
    again = run(["ansible-playbook", "playbooks/lab/up.yml"], check=True)
    assert "changed=0" in again.output and "failed=0" in again.output
    assert docker_names("container", f"label={LABEL}", "status=running") == set(lab["_meta"]["hostvars"])


def test_every_host_answers_ansible(lab):
    proc = run(["ansible", "-i", "inventories/lab", "all", "-m", "ansible.builtin.ping"], check=True)
    for host in lab["_meta"]["hostvars"]:
        assert f"{host} | SUCCESS" in proc.output


def test_hosts_run_systemd_unprivileged(lab):
    for name in lab["_meta"]["hostvars"]:
        host = testinfra.get_host(f"docker://{name}")
        assert host.file("/proc/1/comm").content_string.strip() == "systemd"
        assert host.run("systemctl is-system-running").stdout.strip() == "running"
        config = json.loads(run(["docker", "inspect", name], check=True).stdout)[0]["HostConfig"]
        assert config["Privileged"] is False
        assert "SYS_RESOURCE" not in (config["CapAdd"] or [])


def test_hosts_reach_each_other_by_name(lab):
    hosts = sorted(lab["_meta"]["hostvars"])
    source = testinfra.get_host(f"docker://{hosts[0]}")
    for target in hosts[1:]:
        assert source.run(f"ping -c 1 -W 2 {target}").rc == 0, f"{hosts[0]} cannot reach {target}"


def test_only_the_lb_and_prometheus_publish_and_only_on_loopback(lab):
    published = {}
    for name in lab["_meta"]["hostvars"]:
        ports = json.loads(run(["docker", "inspect", name], check=True).stdout)[0]["NetworkSettings"]["Ports"] or {}
        published[name] = {
            (container_port, binding["HostIp"], binding["HostPort"])
            for container_port, bindings in ports.items()
            for binding in bindings or []
        }
    lb = lab["lb"]["hosts"][0]
    assert {("80/tcp", "127.0.0.1", "8080"), ("443/tcp", "127.0.0.1", "8443")} <= published[lb]
    for name, bindings in published.items():
        assert all(binding[1] == "127.0.0.1" for binding in bindings), f"{name} publishes beyond loopback"
    assert {name for name, bindings in published.items() if bindings} <= {lb, *lab["monitoring"]["hosts"]}


EE_IMAGE = "aistack-fleet-ee:latest"


@pytest.fixture(scope="module")
def ee_image():
    """The execution environment of awx/execution-environment.yml, built offline."""
    run(["tools/ee/build.sh"], env={"EE_TAG": EE_IMAGE}, check=True, timeout=1800)
    return EE_IMAGE


def test_execution_environment_holds_the_collection_and_no_dev_tools(ee_image):
    def inside(*argv):
        return run(["docker", "run", "--rm", ee_image, *argv])

    assert "ansible-playbook [core 2.19." in inside("ansible-playbook", "--version").output
    collections = inside("ansible-galaxy", "collection", "list", "--format", "json").stdout
    installed = {name: info["version"] for path in json.loads(collections).values() for name, info in path.items()}
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert installed.get("aistack.fleet") == galaxy["version"]
    assert set(galaxy["dependencies"]) <= set(installed)
    assert inside("python3", "-c", "import cryptography, jmespath, ansible_runner").returncode == 0
    for tool in ("molecule", "pytest", "ansible-lint", "ruff"):
        assert inside("python3", "-m", "pip", "show", tool).returncode != 0, f"{tool} is in the execution environment"


def awx_slices(hosts, count):
    """The hosts of each slice of a sliced job, as AWX computes them: by name, every count-th."""
    ordered = sorted(hosts)
    return [ordered[offset::count] for offset in range(count)]


def test_a_sliced_job_runs_in_the_execution_environment_as_awx_runs_it(lab, ee_image, tmp_path):
    """ansible-runner with process isolation in the built image, as AWX runs a job: the lab's
    inventory, the playbook by its FQCN, a job slice per run (--limit)."""
    hosts = sorted(lab["_meta"]["hostvars"])
    groups = {
        g: {"hosts": {h: {} for h in v["hosts"]}}
        for g, v in lab.items()
        if g not in ("_meta", "all", "ungrouped") and v.get("hosts")
    }
    inventory = {
        "all": {
            "children": groups,
            "vars": {
                "ansible_connection": "community.docker.docker",
                "ansible_python_interpreter": "/usr/bin/python3",
            },
        }
    }
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory))
    run(
        [
            "ansible",
            "-i",
            "inventories/lab",
            "all",
            "-m",
            "ansible.builtin.file",
            "-a",
            "path=/etc/aistack/fleet.json state=absent",
        ],
        check=True,
    )
    seen, docker = [], shutil.which("docker")
    for number, members in enumerate(awx_slices(hosts, 2), 1):
        argv = [
            "ansible-runner",
            "run",
            str(tmp_path),
            "--ident",
            f"slice{number}",
            "-p",
            "aistack.fleet.smoke",
            "--limit",
            ",".join(members),
            "--process-isolation",
            "--process-isolation-executable",
            "docker",
            "--container-image",
            ee_image,
            # The lab's hosts are containers: the job reaches them with this machine's docker
            # client and socket (a real fleet's job uses SSH).
            "--container-volume-mount",
            "/var/run/docker.sock:/var/run/docker.sock",
            "--container-volume-mount",
            f"{docker}:{docker}:ro",
        ]
        proc = run(argv, env={"ANSIBLE_CONFIG": ""}, timeout=600)
        assert proc.returncode == 0, proc.output[-3000:]
        stats = [
            json.loads(p.read_text()) for p in (tmp_path / "artifacts" / f"slice{number}" / "job_events").glob("*.json")
        ]
        (recap,) = [e["event_data"] for e in stats if e.get("event") == "playbook_on_stats"]
        assert sorted(recap["ok"]) == members and not recap["failures"] and not recap["dark"]
        seen += members
    assert sorted(seen) == hosts
    for name in hosts:
        record = json.loads(testinfra.get_host(f"docker://{name}").file("/etc/aistack/fleet.json").content_string)
        assert record["host"] == name


def test_down_removes_exactly_the_lab(lab, unrelated):
    before = {kind: docker_names(kind) for kind in ("container", "network", "volume")}
    run(["ansible-playbook", "playbooks/lab/down.yml"], check=True)
    for kind in ("container", "network", "volume"):
        assert not docker_names(kind, f"label={LABEL}"), f"down.yml left a {kind} of the lab"
    after = {kind: docker_names(kind) for kind in ("container", "network", "volume")}
    assert before["container"] - after["container"] == set(lab["_meta"]["hostvars"])
    assert before["network"] - after["network"] == {"aistack-lab"}
    assert before["volume"] - after["volume"] == {"aistack-lab-backups"}
    assert unrelated in after["volume"] and unrelated in after["network"]
