#!/usr/bin/env bash
# The whole pipeline on the local stack: bash deploy/local/demo.sh [tokenline demo options]
#
# Installs what is missing (deploy/local/setup.sh), then runs `tokenline demo`: Kafka and
# PostgreSQL on loopback, the processor and the sink, traffic through wrapped real provider
# SDK clients against the local provider emulator, the per-tenant report, a price correction
# replayed with its before/after; it stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/setup.sh
exec .venv/bin/tokenline demo "$@"
