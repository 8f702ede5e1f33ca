#!/usr/bin/env bash
# install-deps.sh - Debian 12 packages dpvsd's tests and demo need. Idempotent:
# does nothing (no apt-get update) when everything is already installed.
set -euo pipefail
PKGS=(iproute2 ethtool nginx-light curl procps iputils-ping keepalived bird2 tcpdump python3-scapy python3-prometheus-client dpdk-dev libdpdk-dev libclang-dev pkg-config dnsmasq-base python3-aiosmtpd)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-deps: all present"
    exit 0
fi
[[ $EUID -eq 0 ]] || { echo "install-deps: need root to install ${missing[*]}" >&2; exit 1; }
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}"
