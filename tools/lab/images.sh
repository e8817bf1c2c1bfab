#!/usr/bin/env bash
# Build the lab's systemd base images offline from Debian (debootstrap + docker import).
#
#   tools/lab/images.sh [suite ...]      default: trixie bookworm
#
# An image is rebuilt only when its recipe changes: the recipe hash (this script, the
# suite, the package list and the host CA bundle) is stored as the image label
# `io.aistack.recipe`, and a matching image is kept as it is.
set -euo pipefail

MIRROR="${AISTACK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${AISTACK_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
IMAGE_PREFIX=aistack-lab
PACKAGES="systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,iproute2,iputils-ping,procps,curl,openssl,gnupg"
HOST_CA_BUNDLE="${AISTACK_HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
SELF="$(readlink -f "$0")"

say() { printf '[images] %s\n' "$*"; }
die() { printf '[images] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "building base images needs root (debootstrap); run as root or ask an administrator to run 'make images'."
command -v debootstrap >/dev/null || die "debootstrap is missing; run 'make engine' first (it installs it from Debian)."
docker info >/dev/null 2>&1 || die "no Docker engine answers; run 'make engine' first."

recipe_hash() {
    local suite="$1"
    {
        cat "$SELF"
        printf '%s\n%s\n%s\n' "$suite" "$PACKAGES" "$MIRROR"
        [ -r "$HOST_CA_BUNDLE" ] && cat "$HOST_CA_BUNDLE"
    } | sha256sum | cut -c1-16
}

build() {
    local suite="$1" image="${IMAGE_PREFIX}:$1" want have root
    want="$(recipe_hash "$suite")"
    have="$(docker image inspect -f '{{ index .Config.Labels "io.aistack.recipe" }}' "$image" 2>/dev/null || true)"
    if [ "$have" = "$want" ]; then
        say "$image is up to date (recipe $want)"
        return 0
    fi
    say "building $image (recipe $want) from $MIRROR"
    root="$(mktemp -d "/var/tmp/${IMAGE_PREFIX}-${suite}.XXXXXX")"
    trap 'rm -rf "$root"' RETURN
    debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$root" "$MIRROR" \
        > "$root.log" 2>&1 || { tail -20 "$root.log" >&2; rm -f "$root.log"; die "debootstrap of $suite failed"; }
    rm -f "$root.log"

    cat > "$root/etc/apt/sources.list" <<SOURCES
deb $MIRROR $suite main
deb $MIRROR $suite-updates main
deb $SECURITY_MIRROR $suite-security main
SOURCES
    # Trust the same extra CAs as the build host, so HTTPS to package indexes works inside.
    if [ -r "$HOST_CA_BUNDLE" ]; then
        install -m 0644 "$HOST_CA_BUNDLE" "$root/usr/local/share/ca-certificates/lab-host-bundle.crt"
        chroot "$root" update-ca-certificates >/dev/null 2>&1 || true
    fi
    # Container hygiene: no getty on a console that does not exist, a fresh machine-id per
    # container, and no services that fight the container runtime.
    : > "$root/etc/machine-id"
    rm -f "$root/var/lib/dbus/machine-id"
    for unit in getty.target console-getty.service systemd-firstboot.service \
                systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
                sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount; do
        ln -sf /dev/null "$root/etc/systemd/system/$unit"
    done
    # Shared apt archive cache: containers mount one host directory per suite at
    # /var/cache/apt/shared. Its packages are linked into apt's own archive before each
    # run and new downloads are copied back after, so a package is fetched once per
    # suite, while every container keeps its own apt lock.
    install -d "$root/var/cache/apt/shared"
    cat > "$root/usr/local/sbin/lab-apt-cache" <<'HOOK'
#!/bin/sh
# lab-apt-cache pull|push: share downloaded .deb files through /var/cache/apt/shared.
shared=/var/cache/apt/shared
own=/var/cache/apt/archives
[ -d "$shared" ] && [ -w "$shared" ] || exit 0
case "$1" in
  pull) for f in "$shared"/*.deb; do [ -e "$f" ] && [ ! -e "$own/${f##*/}" ] && ln -s "$f" "$own/${f##*/}"; done ;;
  push) for f in "$own"/*.deb; do
          [ -f "$f" ] && [ ! -L "$f" ] && [ ! -e "$shared/${f##*/}" ] || continue
          cp "$f" "$shared/.${f##*/}.$$" && mv "$shared/.${f##*/}.$$" "$shared/${f##*/}"
        done ;;
esac
exit 0
HOOK
    chmod 0755 "$root/usr/local/sbin/lab-apt-cache"
    cat > "$root/etc/apt/apt.conf.d/90lab-shared-cache" <<'APTCONF'
APT::Update::Post-Invoke { "/usr/local/sbin/lab-apt-cache pull"; };
DPkg::Pre-Invoke { "/usr/local/sbin/lab-apt-cache push"; };
APT::Keep-Downloaded-Packages "true";
APTCONF
    cat > "$root/etc/systemd/system/lab-apt-cache.service" <<'UNIT'
[Unit]
Description=Link the lab's shared apt archive into apt's cache
ConditionPathIsDirectory=/var/cache/apt/shared

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/lab-apt-cache pull

[Install]
WantedBy=multi-user.target
UNIT
    ln -sf /etc/systemd/system/lab-apt-cache.service "$root/etc/systemd/system/multi-user.target.wants/lab-apt-cache.service"
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/tmp/* "$root"/var/log/*.log
    # No package lists in the image: date the empty lists folder to the epoch so that
    # tools judging the lists' age (apt's cache_valid_time) know they must update first.
    touch -d @0 "$root/var/lib/apt/lists"

    tar -C "$root" -c . | docker import \
        -c 'CMD ["/lib/systemd/systemd"]' \
        -c 'ENV container=docker' \
        -c "LABEL io.aistack.recipe=$want io.aistack.suite=$suite" \
        - "$image" >/dev/null
    say "built $image"
}

suites=("$@")
[ "${#suites[@]}" -gt 0 ] || suites=(trixie bookworm)
for s in "${suites[@]}"; do
    build "$s"
done
