#!/usr/bin/env bash
# Installs everything Recaudo needs on this machine, idempotently and quickly when
# nothing changed: Debian packages, the Python virtualenv from requirements.lock,
# the project's own packages (editable), npm packages and the translation catalogs.
#   deploy/bootstrap.sh          what `make up` needs
#   deploy/bootstrap.sh --test   and what `make test` needs (headless Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PACKAGES="services/common services/auth services/portfolio services/queues services/activities services/documents services/messaging services/reports gateway"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# --- Debian packages ---------------------------------------------------------
command -v python3.11 >/dev/null || command -v python3 >/dev/null || apt_install python3 python3-venv
command -v npm >/dev/null || apt_install nodejs npm
# the IMAP server the messaging service syncs from locally and in tests (run unprivileged)
apt_install dovecot-imapd
# the SMS gateway (bearerbox, smsbox) and its test SMSC (fakesmsc), run unprivileged
apt_install kannel kannel-extras
if [ "${1:-}" = "--test" ]; then
  apt_install chromium fonts-dejavu-core
fi

# --- Python ------------------------------------------------------------------
PYTHON=$(command -v python3.11 || command -v python3)
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv in .venv"
  "$PYTHON" -m venv "$VENV"
fi
want="$(sha256sum requirements.lock | cut -c1-16)-$(cat services/*/pyproject.toml gateway/pyproject.toml | sha256sum | cut -c1-16)"
if ! stamp_ok "$VENV/.recaudo-installed" "$want"; then
  say "installing Python packages (requirements.lock)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.lock 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/pip" show -q setuptools >/dev/null  # the lock installed
  args=(); for p in $PACKAGES; do args+=(-e "$p"); done
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation "${args[@]}" 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -c "import recaudo_common, gateway, auth, portfolio, queues, activities, documents, messaging, reports"
  echo "$want" > "$VENV/.recaudo-installed"
fi

# --- npm (front-end assets and the local S3 server) --------------------------
want=$(sha256sum package-lock.json | cut -c1-16)
if ! stamp_ok node_modules/.recaudo-installed "$want"; then
  say "installing npm packages (package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > node_modules/.recaudo-installed
fi
"$VENV/bin/python" deploy/assets.py

# --- translations --------------------------------------------------------------
"$VENV/bin/pybabel" compile -d gateway/gateway/translations 2>&1 | grep -v "^compiling catalog" || true
