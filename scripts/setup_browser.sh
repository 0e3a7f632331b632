#!/usr/bin/env bash
# Headless Chromium for tests/test_web.py: Debian's chromium + chromium-driver packages
# (/usr/bin/chromium, /usr/bin/chromedriver, same version). Selenium is given the driver path, so it
# never downloads a browser or driver itself.
# Idempotent: when both binaries exist and run, it does nothing (well under a second).
# Needs root (apt-get); as another user it uses sudo when available. Usage: bash scripts/setup_browser.sh
set -euo pipefail

have() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && /usr/bin/chromedriver --version >/dev/null 2>&1; }

if have; then
  echo "setup_browser: $(/usr/bin/chromedriver --version | cut -d' ' -f1-2) already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "setup_browser: need root to install the Debian packages chromium and chromium-driver (run as root, or install them)" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# apt-get install first, so a machine with fresh package lists skips the update
if ! $SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; then
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q chromium chromium-driver >/dev/null
fi

if ! have; then
  echo "setup_browser: chromium / chromium-driver installed but /usr/bin/chromedriver does not run" >&2
  exit 1
fi
echo "setup_browser: installed $(/usr/bin/chromium --version 2>/dev/null | head -1); $(/usr/bin/chromedriver --version | cut -d' ' -f1-2)"
