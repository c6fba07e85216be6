#!/usr/bin/env bash
# The main job on a real model, offline: set up, harvest -> train -> eval -> report.
#   MODEL      model id (default sentence-transformers/all-MiniLM-L6-v2; also HuggingFaceTB/SmolLM2-135M-Instruct)
#   LAYER      block whose residual stream and MLP neurons are harvested (default 3)
#   TOKENS     token budget of the harvest (default 250000)
#   OUT        output folder (default out/demo)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
MODEL="${MODEL:-sentence-transformers/all-MiniLM-L6-v2}"
LAYER="${LAYER:-3}"
TOKENS="${TOKENS:-250000}"
OUT="${OUT:-out/demo}"
# The cache scripts/fetch-models.sh fills.
export SAE_HF_CACHE="${SAE_HF_CACHE:-$REPO/.cache/huggingface/hub}"

scripts/setup.sh
cargo build --release --locked
SAE=target/release/sae
RESID="blocks.$LAYER.hook_resid_post"
NEURONS="blocks.$LAYER.mlp.hook_post"

# A rerun resumes an interrupted harvest (and leaves finished stores alone) and an interrupted training.
$SAE harvest --model "$MODEL" --offline --hook "$RESID" --hook "$NEURONS" --corpus .cache/corpus \
    --out "$OUT/acts" --ctx-len 128 --max-tokens "$TOKENS"
if [[ ! -f "$OUT/sae/sae_weights.safetensors" ]]; then
    RESUME=()
    [[ -d "$OUT/sae/checkpoint" ]] && RESUME=(--resume)
    $SAE train --store "$OUT/acts/$RESID" --out "$OUT/sae" --arch topk --k 16 --expansion 8 \
        --steps 2000 --batch 1024 "${RESUME[@]}"
fi
$SAE eval --sae "$OUT/sae" --store "$OUT/acts/$RESID"
$SAE report --sae "$OUT/sae" --store "$OUT/acts/$RESID" --neurons "$OUT/acts/$NEURONS" \
    --model "$MODEL" --out "$OUT/report"
