#!/usr/bin/env bash
# Installs Tokenline on a VM with systemd: the processor, the sink, the schema migration and
# the nightly prices refresh, run by a `tokenline` system user from /opt/tokenline.
#
#   sudo bash deploy/systemd/install.sh            # install, enable and start
#   sudo bash deploy/systemd/install.sh --no-start # install and enable only
#   bash deploy/systemd/install.sh --root DIR      # lay the files out under DIR (no user, no
#                                                  # systemctl): to inspect, or to build an image
#
# From a checkout of the repository. The Python environment gets every third-party
# distribution from deploy/docker/requirements.lock, checked by hash, then the three parts.
# /etc/tokenline/tokenline.env and prices.yaml are written only when missing: edit them, then
# `systemctl restart tokenline-processor tokenline-sink`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
root=""
start=1
python=${PYTHON:-python3}
while (($#)); do
  case "$1" in
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --no-start) start=0; shift ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -z "$root" && $(id -u) -ne 0 ]]; then
  echo "run as root (or with --root DIR to lay the files out elsewhere)" >&2
  exit 2
fi

echo "== Python environment in $root/opt/tokenline"
"$python" -m venv "$root/opt/tokenline"
pip=("$root/opt/tokenline/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --require-hashes --no-deps -r "$repo/deploy/docker/requirements.lock"
"${pip[@]}" install --no-deps "$repo/common" "$repo/schemas" "$repo/stream_processor" "$repo/sink"
"${pip[@]}" check
"$root/opt/tokenline/bin/tokenline" --version

echo "== units in $root/etc/systemd/system, settings in $root/etc/tokenline"
install -d "$root/etc/systemd/system" "$root/etc/tokenline"
for unit in tokenline-processor.service tokenline-sink.service tokenline-migrate.service \
  tokenline-prices-refresh.service tokenline-prices-refresh.timer; do
  install -m 0644 "$here/$unit" "$root/etc/systemd/system/$unit"
done
for file in tokenline.env prices.yaml; do
  if [[ ! -e "$root/etc/tokenline/$file" ]]; then
    install -m 0640 "$here/$file" "$root/etc/tokenline/$file"
  fi
done

if [[ -n "$root" ]]; then
  echo "laid out under $root (no user created, nothing enabled)"
  exit 0
fi
if ! id tokenline >/dev/null 2>&1; then
  useradd --system --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin tokenline
fi
chgrp tokenline /etc/tokenline/tokenline.env /etc/tokenline/prices.yaml
systemctl daemon-reload
units=(tokenline-migrate.service tokenline-processor.service tokenline-sink.service
  tokenline-prices-refresh.timer)
if ((start)); then
  systemctl enable --now "${units[@]}"
else
  systemctl enable "${units[@]}"
fi
echo "installed: edit /etc/tokenline/tokenline.env, then systemctl restart tokenline-processor tokenline-sink"
