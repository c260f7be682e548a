#!/usr/bin/env bash
# Install the Debian packages Patchbay needs, only those that are missing.
#   runtime: espeak-ng (the offline TTS engine)
#   test:    runtime + sox (audio fixtures) + chromium (browser UI tests)
#            + nginx (`nginx -t` of deploy/nginx/patchbay.conf, tests/test_deploy.py)
set -euo pipefail
set_name=${1:-runtime}
packages=(espeak-ng)
if [[ $set_name == test ]]; then
  packages+=(sox chromium nginx)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "installing Debian packages: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
