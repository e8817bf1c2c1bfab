#!/usr/bin/env bash
# Make sure a Docker engine answers, the tools the lab needs are present, and the kernel
# allows OpenSearch's memory maps. Installs from Debian and starts dockerd only as root.
set -uo pipefail

say() { printf '[engine] %s\n' "$*"; }
die() { printf '[engine] error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    say "installing from Debian: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
        die "apt-get could not install ${missing[*]}"
    fi
}

engine_answers() { timeout 20 docker info >/dev/null 2>&1; }

if ! engine_answers; then
    if ! is_root; then
        if ! command -v docker >/dev/null 2>&1; then
            die "no Docker engine: install docker.io (sudo apt-get install docker.io) and start it, or run 'make engine' as root."
        fi
        die "the Docker engine does not answer to $(id -un): start it (sudo systemctl start docker) and add yourself to the 'docker' group, or run 'make engine' as root."
    fi
    command -v dockerd >/dev/null 2>&1 || apt_install docker.io
    if command -v systemctl >/dev/null 2>&1 && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
        systemctl start docker >/dev/null 2>&1 || true
    fi
    if ! engine_answers; then
        say "starting dockerd in the background (log: /var/log/aistack-dockerd.log)"
        nohup dockerd >/var/log/aistack-dockerd.log 2>&1 &
        for _ in $(seq 1 60); do engine_answers && break; sleep 1; done
    fi
    engine_answers || { tail -5 /var/log/aistack-dockerd.log >&2; die "dockerd did not come up; see /var/log/aistack-dockerd.log"; }
fi
say "Docker engine $(docker version -f '{{.Server.Version}}' 2>/dev/null) answers (storage $(docker info -f '{{.Driver}}' 2>/dev/null), cgroup v$(docker info -f '{{.CgroupVersion}}' 2>/dev/null))"

if is_root; then
    apt_install debootstrap
    current="$(sysctl -n vm.max_map_count 2>/dev/null || echo 0)"
    if [ "$current" -lt 262144 ]; then
        if sysctl -qw vm.max_map_count=262144; then
            say "vm.max_map_count raised to 262144 for OpenSearch"
        else
            say "warning: could not raise vm.max_map_count (OpenSearch hosts will refuse to start)"
        fi
    fi
else
    command -v debootstrap >/dev/null 2>&1 || say "warning: debootstrap is missing; building base images needs root ('sudo make images')."
fi
exit 0
