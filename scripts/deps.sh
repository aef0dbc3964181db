#!/usr/bin/env bash
# Installs what building and testing berth needs on Debian 12 (run as root). Idempotent.
set -euo pipefail
pkgs=(busybox-static libseccomp-dev pkg-config gcc libc6-dev make tar gzip xz-utils bzip2 zstd util-linux iproute2 procps python3 python3-pip)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# docker-py, for the compatibility tests.
if ! python3 -c 'import docker' 2>/dev/null; then
  python3 -m pip install -q 'docker==7.1.0' 2>/dev/null || python3 -m pip install -q --break-system-packages 'docker==7.1.0'
fi

# A docker client, for the tests that drive berthd with the real docker CLI (they fail without
# one). Debian 12 ships the client only inside `docker.io`, which also brings dockerd and
# containerd; their maintainer scripts enable the units (deb-systemd-helper enable, update-rc.d
# defaults) and start them (deb-systemd-invoke / invoke-rc.d). Both starters ask
# /usr/sbin/policy-rc.d first, so the install runs under one that denies every start (exit 101),
# and the units and init script are disabled afterwards: no system dockerd runs or comes up at
# boot, and nothing in berth's tests depends on one.
if ! command -v docker >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  saved=""
  if [ -e "$policy" ]; then
    saved=$(mktemp)
    cp -p "$policy" "$saved"
  fi
  restore_policy() {
    if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
  }
  trap restore_policy EXIT
  printf '#!/bin/sh\n# scripts/deps.sh: no service starts while docker.io installs\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  restore_policy
  trap - EXIT
  if command -v systemctl >/dev/null 2>&1; then
    for unit in docker.socket docker.service containerd.service; do
      # disable edits the unit links, which needs no running systemd; stop only if one runs.
      systemctl disable --quiet "$unit" 2>/dev/null || true
      if [ -d /run/systemd/system ]; then systemctl stop "$unit" 2>/dev/null || true; fi
      if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
        echo "deps.sh: $unit is still enabled" >&2
        exit 1
      fi
    done
  fi
  if [ -x /etc/init.d/docker ]; then
    update-rc.d docker disable >/dev/null 2>&1 || true
  fi
  command -v docker >/dev/null 2>&1 || { echo "deps.sh: docker.io installed no docker client" >&2; exit 1; }
fi
