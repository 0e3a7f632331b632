#!/usr/bin/env bash
# Orthanc with its DICOMweb plugin for tests/test_pacs.py: Debian's orthanc + orthanc-dicomweb packages
# (/usr/sbin/Orthanc; the plugin at /usr/share/orthanc/plugins/libOrthancDicomWeb.so, a link to
# /usr/lib/orthanc/libOrthancDicomWeb.so.<version>). The tests start their own Orthanc on 127.0.0.1 with a
# generated configuration (free ports, authentication on, storage in a temporary folder); nothing is started here
# and the Debian service is not used.
# Idempotent: when the binary and the plugin exist and Orthanc runs, it does nothing (well under a second).
# Needs root (apt-get); as another user it uses sudo when available. Usage: bash scripts/setup_orthanc.sh
set -euo pipefail

PLUGIN=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
have() { [ -x /usr/sbin/Orthanc ] && [ -e "$PLUGIN" ] && /usr/sbin/Orthanc --version >/dev/null 2>&1; }

have && { echo "setup_orthanc: $(/usr/sbin/Orthanc --version | head -1) with $(readlink -f "$PLUGIN") present"; exit 0; }

# root installs directly, another user through sudo (when there is none, say what to install)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
[ -z "$SUDO" ] || command -v sudo >/dev/null 2>&1 || {
  echo "setup_orthanc: need root to install the Debian packages orthanc and orthanc-dicomweb" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
# apt-get install first, so a machine with fresh package lists skips the update; package scripts may try to start
# the orthanc service: harmless (the tests use their own ports, configuration and storage)
PKGS=(orthanc orthanc-dicomweb)
$SUDO apt-get install -y -q --no-install-recommends "${PKGS[@]}" >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends "${PKGS[@]}" >/dev/null; }

if ! have; then
  echo "setup_orthanc: orthanc / orthanc-dicomweb installed but /usr/sbin/Orthanc or $PLUGIN is missing or does not run" >&2
  exit 1
fi
echo "setup_orthanc: installed $(/usr/sbin/Orthanc --version | head -1) with $(readlink -f "$PLUGIN")"
