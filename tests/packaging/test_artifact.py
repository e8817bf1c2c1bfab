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
    # An artifact carries MANIFEST.json and FILES.json instead of galaxy.yml.
    assert {
        "MANIFEST.json",
        "FILES.json",
        "playbooks",
        "meta",
        "README.md",
        "requirements.txt",
        "bindep.txt",
    } <= tops
    assert not tops & set(DEV_ONLY), f"developer-only entries shipped: {sorted(tops & set(DEV_ONLY))}"
    assert not [n for n in names if n.endswith((".pyc", ".tar.gz"))]


@pytest.fixture(scope="module")
def installed(artifact, tmp_path_factory):
    collections = tmp_path_factory.mktemp("installed")
    # Away from this checkout's ansible.cfg, which would find the collection in the checkout.
    # Dependencies come from the pinned `ansible` bundle (Galaxy is unreachable), hence --no-deps.
    install = ["ansible-galaxy", "collection", "install", "--no-deps", "-p", str(collections), str(artifact)]
    run(install, env={"ANSIBLE_CONFIG": "", "ANSIBLE_COLLECTIONS_PATH": str(collections)}, check=True)
    return collections


@pytest.mark.parametrize("playbook", ["aistack.fleet.site", "aistack.fleet.smoke", "aistack.fleet.lab.up"])
def test_installed_artifact_runs_its_playbooks(installed, tmp_path, playbook):
    env = {"ANSIBLE_CONFIG": "", "ANSIBLE_COLLECTIONS_PATH": str(installed)}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    proc = run(["ansible-playbook", "-i", str(inventory), playbook, "--syntax-check"], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.output
    assert (
        str(installed)
        in run(["ansible-galaxy", "collection", "list", "aistack.fleet"], cwd=tmp_path, env=env, check=True).output
    )


def test_galaxy_importer_accepts_the_artifact_without_a_warning(artifact, tmp_path):
    """The checks Galaxy and Automation Hub run on every upload (ansible-doc on every plugin,
    a README in every role, ansible-lint), run here on the artifact as it would be uploaded."""
    proc = run(["python", "-m", "galaxy_importer.main", str(artifact)], cwd=tmp_path, env={"ANSIBLE_CONFIG": ""})
    complaints = [line for line in proc.output.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert proc.returncode == 0 and complaints == [], proc.output[-4000:]
    assert "Linting collection via ansible-lint" in proc.output, "ansible-lint did not run"
    assert proc.output.rstrip().endswith("Importer processing completed successfully"), proc.output[-2000:]


def test_collection_docs_pass_antsibull_docs_lint(installed):
    """Plugin and role documentation markup, references between options and entry points,
    and the changelog, as docs.ansible.com's build reads them."""
    tree = installed / "ansible_collections" / "aistack" / "fleet"
    env = {"ANSIBLE_CONFIG": "", "ANSIBLE_COLLECTIONS_PATH": str(installed)}
    proc = run(["antsibull-docs", "lint-collection-docs", "--plugin-docs", str(tree)], env=env)
    assert proc.returncode == 0 and proc.output.strip() == "", proc.output[-4000:]
