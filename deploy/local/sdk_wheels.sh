#!/usr/bin/env bash
# Builds the tokenline-common, tokenline-schemas and tokenline-sdk wheels, and the
# tokenline-emulator testing tool's (hatchling, isolated build) into OUT_DIR:
#
#   bash deploy/local/sdk_wheels.sh OUT_DIR
#
# CI builds them once; tests/e2e/test_sdk_install.py installs them into fresh virtualenvs.
set -euo pipefail
out=${1:?usage: bash deploy/local/sdk_wheels.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/../.."
.venv/bin/python -m pip wheel --no-deps --disable-pip-version-check --quiet \
  --wheel-dir "$out" ./common ./schemas ./producer_sdk ./emulator
ls "$out"/tokenline_common-*.whl "$out"/tokenline_schemas-*.whl "$out"/tokenline_sdk-*.whl "$out"/tokenline_emulator-*.whl
