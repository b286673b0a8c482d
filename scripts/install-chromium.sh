#!/usr/bin/env bash
# The playground's browser test drives Debian's chromium (/usr/bin/chromium) through
# Playwright; nothing downloads a browser of its own. Install the package when it is missing.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "chromium is missing; run as root: apt-get update && apt-get install -y chromium" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q chromium
