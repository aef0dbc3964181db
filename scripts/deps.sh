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
