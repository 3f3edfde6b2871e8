#!/usr/bin/env bash
# Makes a WebGPU adapter available to Dawn (the `webgpu` npm package) on a Debian bookworm machine
# without a GPU: Mesa's lavapipe (software Vulkan) from bookworm-backports. Bookworm's own mesa
# 22.3 lavapipe is refused by Dawn, so a mesa >= 24 build is required.
# Idempotent: when a recent lavapipe and libvulkan1 are installed it only checks and exits 0.
# As root it adds the backports source (same mirror and keyring as the machine's Debian source)
# and installs; otherwise it prints what to install and exits 1.
set -euo pipefail

MIN_MESA=24
PKGS="mesa-vulkan-drivers libvulkan1"
LIST=/etc/apt/sources.list.d/bookworm-backports.sources

installed_version() {
  dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null | awk '$1 == "installed" { print $2 }'
}

have_lavapipe() {
  local mesa vk
  mesa=$(installed_version mesa-vulkan-drivers)
  vk=$(installed_version libvulkan1)
  [ -n "$mesa" ] && [ -n "$vk" ] && dpkg --compare-versions "$mesa" ge "$MIN_MESA" &&
    ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1
}

if have_lavapipe; then
  echo "setup-webgpu: lavapipe $(installed_version mesa-vulkan-drivers) already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  cat >&2 <<EOF
setup-webgpu: no usable WebGPU software adapter. Dawn needs Mesa's lavapipe >= $MIN_MESA
(bookworm's own 22.3 is refused). As root, add bookworm-backports and run:
  apt-get update && apt-get install -y -t bookworm-backports $PKGS
or run this script as root: sudo bash scripts/setup-webgpu.sh
EOF
  exit 1
fi

if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  SRC=/etc/apt/sources.list.d/debian.sources
  # The stanza that carries the main "bookworm" suite (not -security) gives the mirror and keyring.
  read -r URIS SIGNED_BY < <(awk '
    BEGIN { RS = ""; FS = "\n" }
    {
      uris = ""; signed = ""; main = 0
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
        if ($i ~ /^Signed-By:/) { signed = $i; sub(/^Signed-By:[ \t]*/, "", signed) }
        if ($i ~ /^Suites:/ && $i ~ /[ \t]bookworm([ \t]|$)/) main = 1
      }
      if (main && uris != "") { print uris, signed; exit }
    }' "$SRC" 2>/dev/null || true)
  if [ -z "${URIS:-}" ]; then
    URIS=http://deb.debian.org/debian
    SIGNED_BY=/usr/share/keyrings/debian-archive-keyring.gpg
  fi
  {
    echo "Types: deb"
    echo "URIs: $URIS"
    echo "Suites: bookworm-backports"
    echo "Components: main"
    [ -n "${SIGNED_BY:-}" ] && echo "Signed-By: $SIGNED_BY"
  } >"$LIST"
  echo "setup-webgpu: added $LIST ($URIS)"
fi

export DEBIAN_FRONTEND=noninteractive
# Wait for a concurrent apt run (e.g. another setup script) instead of failing on its lock.
APT_WAIT="-o DPkg::Lock::Timeout=600"
apt-get $APT_WAIT update -qq
apt-get $APT_WAIT install -y -qq -t bookworm-backports $PKGS >/dev/null
if ! have_lavapipe; then
  echo "setup-webgpu: installed $PKGS but lavapipe >= $MIN_MESA is still missing" >&2
  exit 1
fi
echo "setup-webgpu: installed lavapipe $(installed_version mesa-vulkan-drivers)"
