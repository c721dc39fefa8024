#!/usr/bin/env bash
# Builds the native batch decoder (native/: Rust, pyo3, abi3 for CPython >= 3.11) from source
# with maturin and installs the wheel into .venv. setup.sh runs it; run it again after editing
# native/. Nothing is rebuilt while the installed build matches the sources, the toolchain and
# the interpreter (a hash kept in .venv); cargo's own cache (native/target/) keeps a rebuild
# incremental. Without it installed, tokenline.schemas decodes with Python only.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v cargo >/dev/null && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"  # rustup's, in a shell without its profile
fi
if ! command -v cargo >/dev/null; then
  echo "cargo not found: the native decoder needs a Rust toolchain (https://rustup.rs)" >&2
  exit 1
fi
stamp=.venv/.tokenline-native-build
digest=$(
  {
    (cd native && find Cargo.toml Cargo.lock pyproject.toml README.md src -type f -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum)
    cargo --version
    rustc --version
    .venv/bin/maturin --version
    .venv/bin/python -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
)
if [[ -f $stamp && $(<"$stamp") == "$digest" ]] \
  && .venv/bin/python -c 'import tokenline_native' 2>/dev/null; then
  echo "tokenline-native: up to date"
  exit 0
fi

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
.venv/bin/maturin build --release --locked --quiet --manifest-path native/Cargo.toml \
  --interpreter .venv/bin/python --out "$wheels"
.venv/bin/python -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
  "$wheels"/tokenline_native-*.whl
.venv/bin/python -c 'import tokenline_native'
echo "$digest" >"$stamp"
echo "tokenline-native: built and installed ($(basename "$wheels"/tokenline_native-*.whl))"
