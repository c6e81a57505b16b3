#!/usr/bin/env bash
# System packages the test suite needs (Debian): a real Chromium for the browser tests, which
# Playwright drives through `executable_path` (its own browser download cannot be used here).
# Idempotent: installs only what is missing; runs `apt-get update` once, only when needed.
set -euo pipefail

packages=(chromium fonts-dejavu-core)
# DesktopNotifier's test: a private D-Bus session and Debian's D-Bus/GLib bindings for Python.
packages+=(dbus python3-dbus python3-gi)
# The read-only knowledge center test as root: unshare and a read-only bind mount.
packages+=(util-linux mount)
# Study storage in PostgreSQL (issue 13): a private server per test session on 127.0.0.1.
packages+=(postgresql)
# The Docker tests (tests/docker): a private dockerd, and debootstrap for a base image with Python
# (no registry is reachable from the test machines, so no `docker pull`).
packages+=(docker.io debootstrap)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "test system packages already installed: ${packages[*]}"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
