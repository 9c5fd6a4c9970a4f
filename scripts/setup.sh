#!/usr/bin/env bash
# Installs nanokube (idempotent): the Debian tools it drives (only as root or with passwordless sudo; otherwise
# it names the packages to ask for and goes on), then a virtual environment `.venv` in the clone made with the
# first `python3` on PATH, holding the package and its test tools, and a `nanokube` link on PATH
# (/usr/local/bin for root, ~/.local/bin for a user). Nothing is installed into the system Python (PEP 668).
# Environment: PYTHON (default python3), NANOKUBE_VENV (default ./.venv), NANOKUBE_BIN_DIR (where the link goes),
# NANOKUBE_SKIP_APT=1 (do not touch apt); pip reads its own PIP_* variables (e.g. PIP_FIND_LINKS).
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS="python3-venv pipx nftables iproute2 conntrack util-linux procps uidmap mariadb-server mariadb-client dnsutils curl wrk dnsperf dnsmasq-base etcd-server etcd-client chromium nginx-light"
PYTHON="${PYTHON:-python3}"
VENV="${NANOKUBE_VENV:-$PWD/.venv}"

missing=""
for p in $PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"; done
if [ -n "$missing" ] && [ "${NANOKUBE_SKIP_APT:-0}" != 1 ] && command -v apt-get >/dev/null; then
  SUDO="none"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
  if [ "$SUDO" = none ]; then
    echo "nanokube setup: not root and no passwordless sudo, so no apt; ask an admin for:" >&2
    echo "  apt-get install -y$missing" >&2
  else
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
    # mariadb-server's package scripts start a system mariadb; nanokube runs its own per pod.
    $SUDO systemctl disable --now mariadb >/dev/null 2>&1 || $SUDO service mariadb stop >/dev/null 2>&1 || true
    # etcd-server's likewise starts a system etcd on 2379; nanokube's tests start their own on free ports.
    $SUDO systemctl disable --now etcd >/dev/null 2>&1 || $SUDO service etcd stop >/dev/null 2>&1 || true
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV"; then
    rm -rf "$VENV"
    echo "nanokube setup: '$PYTHON -m venv' failed; on Debian/Ubuntu install python3-venv (apt-get install -y python3-venv)" >&2
    exit 1
  fi
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]"

if [ -n "${NANOKUBE_BIN_DIR:-}" ]; then BIN="$NANOKUBE_BIN_DIR"
elif [ "$(id -u)" -eq 0 ]; then BIN=/usr/local/bin
else BIN="$HOME/.local/bin"; fi
mkdir -p "$BIN"
ln -sfn "$VENV/bin/nanokube" "$BIN/nanokube"
case ":$PATH:" in
  *":$BIN:"*) ;;
  *) echo "nanokube setup: $BIN is not on your PATH; run: export PATH=\"$BIN:\$PATH\"" >&2 ;;
esac
echo "nanokube setup: installed $BIN/nanokube -> $VENV/bin/nanokube" >&2
