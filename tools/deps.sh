#!/usr/bin/env bash
# Make sure the machine has the Debian tools the test suite runs against: shellcheck
# (sanity), redis-server (the example app's readiness tests), wrk (the load tool of the
# procedure tests and benchmarks), prometheus (slo_gate's Prometheus mode) and chromium (the
# deploy report's page, opened headless by its test). As root,
# installs what is missing from Debian; otherwise says in one sentence what is missing.
set -uo pipefail

say() { printf '[deps] %s\n' "$*"; }
die() { printf '[deps] error: %s\n' "$*" >&2; exit 1; }

# command -> Debian package
declare -A packages=([shellcheck]=shellcheck [redis-server]=redis-server [wrk]=wrk [prometheus]=prometheus [chromium]=chromium)

missing=()
for command in "${!packages[@]}"; do
    command -v "$command" >/dev/null 2>&1 || missing+=("${packages[$command]}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    die "missing ${missing[*]}: install them (sudo apt-get install ${missing[*]}) or run 'make deps' as root."
fi
say "installing from Debian: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    die "apt-get could not install ${missing[*]}"
fi
