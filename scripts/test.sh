#!/usr/bin/env bash
# The project's test command (README, CI): set up models, corpus and browser, then run every test.
# Tests run optimised: numeric code (candle's gemm) is unusably slow without optimisation.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
scripts/setup.sh
cargo test --release --workspace --locked
