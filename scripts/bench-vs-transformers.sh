#!/usr/bin/env bash
# Forward-pass speed of `sae` against PyTorch transformers on the same cores and the same batches:
#   all-MiniLM-L6-v2      batch 32 x 128, all 6 layers (f32, sdpa attention, output_hidden_states=True)
#   SmolLM2-135M-Instruct batch  8 x 128, all 30 layers, transformers loading the same GGUF (gguf_file=,
#                         dequantized to f32) as sae does
# Both use 2 threads (torch.set_num_threads(2); sae: RAYON_NUM_THREADS=2) and the same token ids
# ((i * 7919 + 13) mod vocab, as `sae bench harvest`); each side reports its best of ITERS passes after a
# warm-up. Prints both rates and their ratio.
#
# Not part of CI or the tests: it makes its own venv (.cache/bench-venv) with torch, transformers and gguf
# from PyPI (the default torch wheel is the CUDA build, ~5 GB; it runs on the CPU here). Needs the models of
# scripts/fetch-models.sh. Environment: SAE_HF_CACHE, ITERS (default 3), BENCH_VENV, LOCK (a flock file held
# exclusively while measuring, default /tmp/sae-cpu.lock).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SAE_HF_CACHE="${SAE_HF_CACHE:-$REPO/.cache/huggingface/hub}"
VENV="${BENCH_VENV:-$REPO/.cache/bench-venv}"
ITERS="${ITERS:-3}"
LOCK="${LOCK:-/tmp/sae-cpu.lock}"

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import torch, transformers, gguf, accelerate" 2>/dev/null; then
    echo "bench-vs-transformers: installing torch, transformers, gguf into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check torch transformers gguf accelerate numpy
fi
(cd "$REPO" && flock -s "$LOCK" cargo build --release --quiet --bin sae)
SAE="$REPO/target/release/sae"

snapshot() { # REPO_ID -> snapshot folder in the hub cache
    local folder="$SAE_HF_CACHE/models--${1//\//--}"
    echo "$folder/snapshots/$(cat "$folder/refs/main")"
}
MINILM="$(snapshot sentence-transformers/all-MiniLM-L6-v2)"
SMOL="$(snapshot HuggingFaceTB/SmolLM2-135M-Instruct)"
SMOL_GGUF="$(cd "$SMOL" && ls *.gguf | head -n1)"

export TRANSFORMERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1
PY="$(mktemp)"
trap 'rm -f "$PY"' EXIT
cat > "$PY" <<'PYEOF'
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import torch
torch.set_num_threads(2)
from transformers import AutoModel, AutoModelForCausalLM

kind, path, batch, ctx, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if kind == "bert":
    model = AutoModel.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
else:
    model = AutoModelForCausalLM.from_pretrained(path, gguf_file=sys.argv[6], dtype=torch.float32,
                                                 attn_implementation="sdpa")
    model = model.model  # the decoder without the LM head, as sae's hook pass
model.eval()
vocab = model.config.vocab_size
ids = torch.tensor([(i * 7919 + 13) % vocab for i in range(batch * ctx)], dtype=torch.long).view(batch, ctx)
mask = torch.ones_like(ids)
def run():
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return out.hidden_states[-1].numpy().copy()
run()
best = float("inf")
for _ in range(iters):
    t = time.perf_counter(); run(); best = min(best, time.perf_counter() - t)
print(json.dumps({"tokens_per_s": batch * ctx / best, "layers": model.config.num_hidden_layers}))
PYEOF

measure() { # NAME KIND PATH BATCH CTX ONLY [GGUF]
    local name="$1" kind="$2" path="$3" batch="$4" ctx="$5" only="$6" gguf="${7:-}"
    local hf ours
    hf="$(flock -x "$LOCK" "$VENV/bin/python" "$PY" "$kind" "$path" "$batch" "$ctx" "$ITERS" "$gguf" 2>/dev/null | tail -n1)"
    ours="$(RAYON_NUM_THREADS=2 flock -x "$LOCK" "$SAE" bench harvest --json --only "$only" --iters "$ITERS")"
    python3 - "$name" "$batch" "$ctx" "$hf" "$ours" <<'CMP'
import json, sys
name, batch, ctx = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hf, ours = json.loads(sys.argv[4]), json.loads(sys.argv[5])[0]
print(f"{name:<24} batch {batch:>2} x {ctx} tokens, {ours['layers']:>2} layers: transformers {hf['tokens_per_s']:7.0f} "
      f"tokens/s, sae {ours['tokens_per_s']:7.0f} tokens/s: {ours['tokens_per_s'] / hf['tokens_per_s']:.2f}x "
      f"(sae at {ours['fraction_of_limit']:.2f} of its in-run matmul limit, gemm {ours['gemm_gflops']:.0f} GFLOP/s)")
CMP
}

echo "bench-vs-transformers: $(date -u +%FT%TZ), $(nproc) cores, torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
measure all-MiniLM-L6-v2 bert "$MINILM" 32 128 MiniLM
measure SmolLM2-135M-Instruct llama "$SMOL" 8 128 SmolLM2 "$SMOL_GGUF"
