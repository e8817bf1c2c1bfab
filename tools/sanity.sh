#!/usr/bin/env bash
# ansible-test sanity needs the collection at ansible_collections/<namespace>/<name>: copy
# the checkout's files (tracked and new, not ignored) into such a tree and run it there,
# each test in its own virtual environment, with no ignore file. The tree lives outside the
# checkout: inside it, git would hide it from ansible-test as an ignored folder.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tree="${SANITY_TREE:-${TMPDIR:-/tmp}/aistack-fleet-sanity}/ansible_collections/aistack/fleet"
python="${SANITY_PYTHON:-3.11}"

# ansible-test bootstraps pip in each virtual environment with a script from a host that is
# unreachable here: give it a stand-in that runs the same pip version from PyPI's wheel.
pip_version="$(python3 - <<'PY'
import re, ansible_test, pathlib
source = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", source.read_text())[1])
PY
)"
cache="$HOME/.ansible/test/cache"
standin="$cache/get_pip_${pip_version//./_}.py"
if [ ! -f "$standin" ] || ! cmp -s "$root/tools/get_pip_standin.py" "$standin"; then
    mkdir -p "$cache"
    pip download --quiet --no-deps --only-binary=:all: -d "$cache" "pip==$pip_version"
    cp "$root/tools/get_pip_standin.py" "$standin"
fi

rm -rf "$tree"
mkdir -p "$tree"
(cd "$root" && git ls-files -co --exclude-standard) \
    | tar -C "$root" --ignore-failed-read -cf - -T - 2>/dev/null \
    | tar -C "$tree" -xf -
if compgen -G "$tree/tests/sanity/ignore-*.txt" >/dev/null; then
    echo "sanity: ignore files are not allowed (tests/sanity/ignore-*.txt); fix the findings instead" >&2
    exit 1
fi
cd "$tree"
exec ansible-test sanity --venv --python "$python" --color no "$@"
