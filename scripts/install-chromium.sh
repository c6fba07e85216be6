#!/usr/bin/env bash
# Installs Debian's chromium (headless browser test of the dashboard) when it is missing. Idempotent.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
echo "install-chromium: installing Debian's chromium"
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q chromium >/dev/null
}
