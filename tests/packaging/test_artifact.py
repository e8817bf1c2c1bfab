"""The built collection holds what an installed collection needs, and nothing else, and works."""

import tarfile

import pytest
import yaml

from tests.conftest import ROOT, run

GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
DEV_ONLY = ("molecule", "tests", "tools", "docs", "inventories", "examples", "awx", ".venv", ".collections", ".cache")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    run(["ansible-galaxy", "collection", "build", "--output-path", str(out), str(ROOT)], check=True)
    (path,) = out.glob("aistack-fleet-*.tar.gz")
    assert path.name == f"aistack-fleet-{GALAXY['version']}.tar.gz"
    return path


def test_artifact_leaves_developer_folders_out(artifact):
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    tops = {name.split("/")[0] for name in names}
    assert {"galaxy.yml", "MANIFEST.json", "FILES.json", "playbooks", "meta", "README.md"} <= tops | {"galaxy.yml"}
    assert not tops & set(DEV_ONLY), f"developer-only entries shipped: {sorted(tops & set(DEV_ONLY))}"
    assert not [n for n in names if n.endswith((".pyc", ".tar.gz"))]


@pytest.mark.parametrize("playbook", ["aistack.fleet.site", "aistack.fleet.smoke", "aistack.fleet.lab.up"])
def test_installed_artifact_runs_its_playbooks(artifact, tmp_path, playbook):
    collections = tmp_path / "collections"
    # Away from this checkout's ansible.cfg, which would find the collection in the checkout.
    env = {"ANSIBLE_CONFIG": "", "ANSIBLE_COLLECTIONS_PATH": str(collections)}
    # Dependencies come from the pinned `ansible` bundle (Galaxy is unreachable), hence --no-deps.
    install = ["ansible-galaxy", "collection", "install", "--no-deps", "-p", str(collections), str(artifact)]
    run(install, cwd=tmp_path, env=env, check=True)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    proc = run(["ansible-playbook", "-i", str(inventory), playbook, "--syntax-check"], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.output
    assert (
        str(collections)
        in run(["ansible-galaxy", "collection", "list", "aistack.fleet"], cwd=tmp_path, env=env, check=True).output
    )
