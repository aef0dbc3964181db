#!/usr/bin/env bash
# Installs what building and testing berth needs on Debian 12 (run as root). Idempotent.
set -euo pipefail
# skopeo, apache2-utils (htpasswd) and openssl serve the registry tests (docker-registry below);
# git (with `git daemon`) the git build contexts and their tests.
pkgs=(git busybox-static libseccomp-dev pkg-config gcc libc6-dev make tar gzip xz-utils bzip2 zstd util-linux iproute2 nftables libnftables-dev procps python3 python3-pip skopeo apache2-utils openssl)
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

# Installs Debian packages whose maintainer scripts enable and start a system service, without
# starting it: the maintainer scripts enable the units (deb-systemd-helper enable, update-rc.d
# defaults) and start them (deb-systemd-invoke / invoke-rc.d); both starters ask
# /usr/sbin/policy-rc.d first, so the install runs under one that denies every start (exit 101,
# the machine's own policy restored afterwards), and the named units and init scripts are disabled
# afterwards: nothing comes up at boot, and no test depends on a system service.
# usage: install_without_services "pkg…" "unit…" "initscript…"
install_without_services() {
  local pkgs=$1 units=$2 initscripts=$3
  export DEBIAN_FRONTEND=noninteractive
  local policy=/usr/sbin/policy-rc.d
  saved=""
  if [ -e "$policy" ]; then
    saved=$(mktemp)
    cp -p "$policy" "$saved"
  fi
  restore_policy() {
    if [ -n "$saved" ]; then mv -f "$saved" /usr/sbin/policy-rc.d; else rm -f /usr/sbin/policy-rc.d; fi
  }
  trap restore_policy EXIT
  printf '#!/bin/sh\n# scripts/deps.sh: no service starts while packages install\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
  restore_policy
  trap - EXIT
  if command -v systemctl >/dev/null 2>&1; then
    for unit in $units; do
      # disable edits the unit links, which needs no running systemd; stop only if one runs.
      systemctl disable --quiet "$unit" 2>/dev/null || true
      if [ -d /run/systemd/system ]; then systemctl stop "$unit" 2>/dev/null || true; fi
      if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
        echo "deps.sh: $unit is still enabled" >&2
        exit 1
      fi
    done
  fi
  for init in $initscripts; do
    if [ -x "/etc/init.d/$init" ]; then
      update-rc.d "$init" disable >/dev/null 2>&1 || true
    fi
  done
}

# A docker client, for the tests that drive berthd with the real docker CLI (they fail without
# one), and dockerd, which the builder's conformance test starts privately (own socket and roots,
# --iptables=false --bridge=none) to build the same contexts, and the beside-dockerd network test
# starts with Docker's firewall on (--iptables, in a network namespace of its own; docker.io
# pulls in iptables). Debian 12 ships both in `docker.io`,
# with containerd: installed without starting them, and their units disabled.
if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
  install_without_services docker.io "docker.socket docker.service containerd.service" docker
  command -v docker >/dev/null 2>&1 || { echo "deps.sh: docker.io installed no docker client" >&2; exit 1; }
fi

# docker-compose (Debian's 1.29.2, on python3-docker), for the compose tests. Without its
# recommended docker.io, which the step above installs with its services kept from starting.
if ! command -v docker-compose >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; }
fi

# The real distribution registry (registry:2), which the registry tests start themselves on
# 127.0.0.1 ports they pick (/usr/bin/docker-registry serve <config>). The package also ships a
# system registry on :5000 (docker-registry.service): installed without starting it, and disabled.
if [ ! -x /usr/bin/docker-registry ]; then
  install_without_services docker-registry "docker-registry.service" docker-registry
  [ -x /usr/bin/docker-registry ] || { echo "deps.sh: docker-registry installed no /usr/bin/docker-registry" >&2; exit 1; }
fi
