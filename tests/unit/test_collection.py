"""The collection's metadata keeps its promises: semver, honest dependencies, a lean artifact."""

import re
import subprocess

import yaml
from ansible.module_utils.compat.version import LooseVersion
from ansible.release import __version__ as ansible_core_version

from tests.conftest import ROOT

GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
# What an installed collection needs; everything else at the top level is for developers.
SHIPPED = {
    "galaxy.yml",
    "meta",
    "plugins",
    "roles",
    "playbooks",
    "README.md",
    "LICENSE",
    "CHANGELOG.rst",
    "changelogs",
    # What the collection needs on the controller, for ansible-builder's introspection.
    "requirements.txt",
    "bindep.txt",
}
FQCN = re.compile(r"^([a-z0-9_]+)\.([a-z0-9_]+)\.[a-z0-9_]+$")


def test_identity_and_semver():
    assert (GALAXY["namespace"], GALAXY["name"]) == ("aistack", "fleet")
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", GALAXY["version"])
    assert GALAXY["license"] and GALAXY["tags"]


def _collections_used():
    """Collections named by FQCN as module keys of tasks (dicts with a name) in playbooks and roles."""
    used = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                match = FQCN.match(str(key))
                if match and "name" in node:
                    used.add(f"{match[1]}.{match[2]}")
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for top in ("playbooks", "roles"):
        for path in (ROOT / top).rglob("*.yml"):
            walk(yaml.safe_load(path.read_text()))
    return used - {"ansible.builtin", "aistack.fleet"}


def test_dependencies_are_exactly_the_collections_used():
    assert set(GALAXY.get("dependencies") or {}) == _collections_used()


def test_every_developer_only_entry_is_left_out_of_the_artifact():
    tracked = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    top_level = {path.split("/")[0] for path in tracked}
    ignored = set(GALAXY["build_ignore"])
    leaking = sorted(entry for entry in top_level - SHIPPED if entry not in ignored)
    assert not leaking, f"add to build_ignore in galaxy.yml: {leaking}"


def test_requires_ansible_matches_the_pinned_core():
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    minimum = runtime["requires_ansible"].lstrip(">=")
    assert LooseVersion(ansible_core_version) >= LooseVersion(minimum)
    pinned = re.search(r"^ansible-core==(\S+)$", (ROOT / "requirements-dev.txt").read_text(), re.M)[1]
    assert pinned == ansible_core_version, "the development environment is not the pinned one: run make venv"


# Tiers by the word that names them, and the role that must exist before galaxy.yml names it.
TIERS = {
    "nginx": "nginx_lb",
    "uvicorn": "uvicorn_service",
    "supervisor": "supervisor",
    "redis": "redis",
    "mongodb": "mongodb",
    "opensearch": "opensearch",
    "prometheus": "prometheus",
    "alertmanager": "alertmanager",
}


def test_galaxy_metadata_names_only_tiers_that_ship():
    """Galaxy users search by tag and read the description: neither may promise a tier whose
    role does not exist yet."""
    words = set(GALAXY["tags"]) | set(re.findall(r"[a-z]+", GALAXY["description"].lower()))
    promised = {word for word in TIERS if word in words}
    missing = sorted(word for word in promised if not (ROOT / "roles" / TIERS[word]).is_dir())
    assert missing == [], f"galaxy.yml names tiers without a role: {missing}"
