"""Check, offline, that every collection galaxy.yml depends on is installed.

    python3 tools/check_collections.py [path/to/galaxy.yml]

Ansible Galaxy is not reachable from our build machines: the dependencies come from the
pinned ``ansible`` bundle in the development environment. Exit 1 with one line per missing
or too old collection.
"""

import json
import subprocess
import sys
from pathlib import Path

import yaml
from ansible.module_utils.compat.version import LooseVersion

ROOT = Path(__file__).resolve().parent.parent


def installed():
    out = subprocess.run(
        ["ansible-galaxy", "collection", "list", "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = {}
    for path_collections in json.loads(out).values():
        for name, info in path_collections.items():
            found.setdefault(name, info.get("version", "0"))
    return found


def main(galaxy=ROOT / "galaxy.yml"):
    wanted = yaml.safe_load(Path(galaxy).read_text()).get("dependencies") or {}
    have = installed()
    problems = []
    for name, spec in sorted(wanted.items()):
        if name not in have:
            problems.append(f"{name} {spec} is not installed (install the pinned 'ansible' bundle: make venv)")
            continue
        minimum = spec.lstrip(">=~^ ")
        if spec.startswith(">=") and LooseVersion(have[name]) < LooseVersion(minimum):
            problems.append(f"{name} {have[name]} is older than the required {spec}")
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print("collections: " + ", ".join(f"{n} {have[n]}" for n in sorted(wanted)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
