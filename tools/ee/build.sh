#!/usr/bin/env bash
# Build the execution environment of awx/execution-environment.yml with ansible-builder and
# the Docker engine, offline: the collection is built from this checkout, and its collection
# dependencies are copied from the pinned `ansible` bundle (Galaxy is not reachable here).
# The image is rebuilt only when its recipe changes: the hash of the collection's files (its
# FILES.json), this script and the EE definition is stored as the label io.aistack.recipe.
#
#   tools/ee/build.sh            EE_BASE_IMAGE (default aistack-lab:trixie), EE_TAG
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$ROOT/.cache/ee"
EE_TAG="${EE_TAG:-aistack-fleet-ee:latest}"
EE_BASE_IMAGE="${EE_BASE_IMAGE:-aistack-lab:trixie}"

say() { printf '[ee] %s\n' "$*"; }

rm -rf "$OUT/collections" "$OUT/dist"
mkdir -p "$OUT/collections" "$OUT/dist"
ansible-galaxy collection build --output-path "$OUT/dist" "$ROOT" >/dev/null
mv "$OUT"/dist/aistack-fleet-*.tar.gz "$OUT/collections/aistack-fleet.tar.gz"

# The collection's dependencies and theirs, copied from the pinned `ansible` bundle (the
# bundle trims files its artifacts list, so they are copied as installed collections).
python3 - "$ROOT/galaxy.yml" "$OUT/collections" <<'PY'
import importlib, json, pathlib, shutil, sys, yaml
wanted, out, done = list(yaml.safe_load(open(sys.argv[1]))["dependencies"]), pathlib.Path(sys.argv[2]), set()
while wanted:
    fqcn = wanted.pop()
    if fqcn in done:
        continue
    path = pathlib.Path(importlib.import_module("ansible_collections." + fqcn).__path__[0])
    shutil.copytree(path, out / "ansible_collections" / fqcn.replace(".", "/"), ignore=shutil.ignore_patterns("__pycache__"))
    done.add(fqcn)
    wanted += json.loads((path / "MANIFEST.json").read_text())["collection_info"]["dependencies"]
    print(f"[ee] copied {fqcn} from {path}")
PY

want="$( { tar -xzOf "$OUT/collections/aistack-fleet.tar.gz" FILES.json; cat "$0" "$ROOT"/awx/execution-environment.yml \
    "$ROOT"/awx/requirements.yml "$OUT"/collections/ansible_collections/*/*/MANIFEST.json
    docker image inspect -f '{{.Id}}' "$EE_BASE_IMAGE" 2>/dev/null || echo "$EE_BASE_IMAGE"; } | sha256sum | cut -c1-16)"
have="$(docker image inspect -f '{{ index .Config.Labels "io.aistack.recipe" }}' "$EE_TAG" 2>/dev/null || true)"
if [ "$have" = "$want" ]; then
    say "$EE_TAG is up to date (recipe $want)"
    exit 0
fi
say "building $EE_TAG from $EE_BASE_IMAGE (recipe $want)"
ansible-builder build --file "$ROOT/awx/execution-environment.yml" --context "$OUT/context" \
    --container-runtime docker --tag "$EE_TAG" --build-arg EE_BASE_IMAGE="$EE_BASE_IMAGE" \
    --build-arg ANSIBLE_GALAXY_CLI_COLLECTION_OPTS=--offline --extra-build-cli-args "--label io.aistack.recipe=$want" \
    --verbosity 2
say "built $EE_TAG"
