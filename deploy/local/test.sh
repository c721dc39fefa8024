#!/usr/bin/env bash
# Sets up everything the tests need and runs them: bash deploy/local/test.sh [pytest args]
# Without arguments it runs every tier and then the Node.js SDK's tests (node --test); with
# arguments, only pytest with them.
#
# Services come from TOKENLINE_TEST_KAFKA_BOOTSTRAP / TOKENLINE_TEST_DATABASE_URL when set;
# otherwise the test fixtures use a Docker engine if one answers, else the local stack
# (`tokenline dev up`), which this script starts first and stops at the end unless it was
# already running.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/setup.sh

if [[ -z "${TOKENLINE_TEST_KAFKA_BOOTSTRAP:-}" && -z "${TOKENLINE_TEST_DATABASE_URL:-}" ]]; then
  if ! .venv/bin/tokenline dev status --quiet; then
    trap '.venv/bin/tokenline dev down' EXIT
  fi
  eval "$(.venv/bin/tokenline dev up --env)"
  export TOKENLINE_TEST_KAFKA_BOOTSTRAP TOKENLINE_TEST_DATABASE_URL
fi

status=0
.venv/bin/pytest "$@" || status=$?
if (($# == 0)); then
  echo "== Node.js SDK tests (producer_sdk/node)"
  (cd producer_sdk/node && npm test --silent) || status=$?
fi
exit "$status"
