#!/usr/bin/env bash
# The project's Python environment: a venv with deploy/python-requirements.txt installed, for the tests
# that check our output with standard tools written in Python (fastavro reading the Avro topics).
#
# Usage: eval "$(deploy/python.sh)"      installs what is missing, then prints the export below
#        eval "$(deploy/python.sh env)"  prints it only: export COUPANG_ETL_PYTHON=<the venv's python>
# Idempotent: with the venv up to date it returns at once. The venv lives in COUPANG_ETL_VENV (default
# ~/.cache/coupang-etl/venv); it is rebuilt when its interpreter no longer runs, and the requirements
# are reinstalled when deploy/python-requirements.txt changes. Needs Python >= 3.9 (python3 on PATH,
# or Debian's python3 + python3-venv, installed when missing); packages come from PyPI.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${COUPANG_ETL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/coupang-etl/venv}
REQUIREMENTS=$ROOT/deploy/python-requirements.txt
# What the installed packages were installed from: the requirements file's hash, kept in the venv.
STAMP=$VENV/.coupang-etl-requirements.sha256

log() { printf '[python] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi
}

# A python3 that can create venvs (Debian ships the venv module apart, in python3-venv).
base_python_ok() {
  command -v python3 >/dev/null &&
    python3 -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null
}

install_base_python() {
  base_python_ok && return
  command -v apt-get >/dev/null || die "need python3 (>= 3.9) with its venv module on PATH"
  log "installing python3 and python3-venv from Debian (once per machine)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  base_python_ok || die "python3 (>= 3.9) with its venv module is still missing after installing Debian's"
}

install_venv() {
  mkdir -p "$(dirname "$VENV")"
  # One install at a time (the test command and a developer's shell may both run this).
  exec 9>"$VENV.lock"
  command -v flock >/dev/null && flock 9
  if [ -e "$VENV" ] && ! "$VENV/bin/python" -c '' 2>/dev/null; then
    # Never delete a directory this script did not make.
    [ -f "$VENV/pyvenv.cfg" ] || die "$VENV exists and is not a venv: move it, or set COUPANG_ETL_VENV"
    log "the venv's interpreter does not run (its base python changed?): rebuilding $VENV"
    rm -rf "$VENV"
  fi
  if [ ! -e "$VENV" ]; then
    install_base_python
    log "creating a venv at $VENV with $(python3 --version 2>&1)"
    python3 -m venv "$VENV"
  fi
  local wanted
  wanted=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
  if [ "$(cat "$STAMP" 2>/dev/null)" = "$wanted" ]; then
    log "venv up to date: $VENV ($("$VENV/bin/python" --version 2>&1))"
    return
  fi
  log "installing deploy/python-requirements.txt from PyPI: $(grep -v "^#" "$REQUIREMENTS" | grep . | paste -sd " ")"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$REQUIREMENTS"
  echo "$wanted" >"$STAMP"
  log "venv ready: $VENV"
}

print_env() {
  printf 'export COUPANG_ETL_PYTHON=%q\n' "$VENV/bin/python"
}

case "${1:-install}" in
  install) install_venv; print_env ;;
  env) print_env ;;
  *) die "usage: deploy/python.sh [install|env]" ;;
esac
