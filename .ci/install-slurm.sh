#!/usr/bin/env bash
# Install the Debian packages needed to run a single-node SLURM cluster
# (slurm-wlm brings slurmctld, slurmd and the client tools; munge handles auth).
# Idempotent: does nothing when everything is already installed.
set -euo pipefail

packages=(slurm-wlm munge)
missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-slurm: already installed: ${packages[*]}"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "install-slurm: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"

for tool in slurmctld slurmd sinfo munged; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
        echo "install-slurm: $tool not found after install" >&2
        exit 1
    fi
done
echo "install-slurm: done"
