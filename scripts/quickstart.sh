#!/usr/bin/env bash
# The main job for a newcomer, offline on a real model: set up (models, corpus, browser; idempotent),
# build, and `sae run configs/quickstart.toml` (all-MiniLM-L6-v2: harvest -> train -> eval -> report).
#   CONFIG   run config (default configs/quickstart.toml; configs/smollm2.toml for the causal LM with
#            spliced evaluation)
#   OUT      output folder (default: the config's `out`)
# A rerun skips the stages that are done and resumes an interrupted one.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
CONFIG="${CONFIG:-configs/quickstart.toml}"
# The cache scripts/fetch-models.sh fills.
export SAE_HF_CACHE="${SAE_HF_CACHE:-$REPO/.cache/huggingface/hub}"

scripts/setup.sh
cargo build --release --locked
OUT_ARGS=()
[[ -n "${OUT:-}" ]] && OUT_ARGS=(--out "$OUT")
target/release/sae run "$CONFIG" "${OUT_ARGS[@]}"
OUT_DIR="${OUT:-$(sed -n 's/^out = "\(.*\)".*/\1/p' "$CONFIG")}"
echo "dashboards:"
ls "$OUT_DIR"/report/*/index.html
