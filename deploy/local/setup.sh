#!/usr/bin/env bash
# Sets up a development machine: Debian packages (PostgreSQL, Java, Maven) when missing,
# the .venv with the six distributions editable and the pinned dev tools, the native batch
# decoder built from native/ (Rust; deploy/local/native.sh), and the Kafka broker jars
# (resolved by Maven into ~/.cache/tokenline, outside the repository), and the Node.js SDK
# (producer_sdk/node: its locked dependencies from the npm registry, then built and type-checked).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql postgresql-contrib)
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v stress-ng >/dev/null || need_apt+=(stress-ng)            # CI's run under load
command -v systemd-analyze >/dev/null || need_apt+=(systemd)        # checks the VM units
command -v promtool >/dev/null || need_apt+=(prometheus)            # runs the dashboards' queries
command -v npm >/dev/null || need_apt+=(nodejs npm)                 # the Node.js SDK (Node >= 20)
if ((${#need_apt[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${need_apt[*]} (run as root, or: sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  echo "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "== creating .venv (the first setup installs everything: a few minutes)"
  python3 -m venv .venv
fi
echo "== .venv: the six distributions (editable), every dependency at deploy/local/pins.txt"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip==25.3"
.venv/bin/python -m pip install -q --disable-pip-version-check -c deploy/local/pins.txt \
  -e ./common -e "./schemas[registry]" -e "./producer_sdk[all]" -e ./emulator -e ./stream_processor -e ./sink -e ".[dev]"

bash deploy/local/native.sh

echo "== Kafka broker jars (Maven, cached in ~/.cache/tokenline)"
.venv/bin/tokenline dev jars

echo "== Node.js SDK: npm ci (package-lock.json) and build"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || { echo "the Node.js SDK needs Node.js 20 or newer; found $(node --version)" >&2; exit 1; }
(
  cd producer_sdk/node
  [[ node_modules/.package-lock.json -nt package-lock.json ]] \
    || npm ci --no-audit --no-fund --loglevel=error
  npm run --silent build
)
