#!/usr/bin/env bash
# Installs what nanokube needs on a Debian machine (idempotent): system tools, then the package itself.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS="nftables iproute2 conntrack util-linux procps mariadb-server mariadb-client dnsutils curl wrk dnsperf dnsmasq-base"
missing=""
for p in $PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  # mariadb-server's package scripts start a system mariadb; nanokube runs its own per pod.
  $SUDO systemctl disable --now mariadb >/dev/null 2>&1 || $SUDO service mariadb stop >/dev/null 2>&1 || true
fi
python3 -m pip install -q --disable-pip-version-check -e ".[test]"
