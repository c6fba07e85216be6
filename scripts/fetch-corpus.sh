#!/usr/bin/env bash
# Extracts English text from Debian packages into a corpus folder that `sae harvest --corpus` reads.
#
#   fortunes, fortunes-min  -> fortunes-<collection>.jsonl  (one short text per line, field "text")
#   jargon-text             -> jargon.txt                    (one long document: the Jargon File glossary)
#
# Idempotent: a corpus folder holding its `.complete` marker is left alone. Environment:
#   SAE_CORPUS          the corpus folder (default: $REPO/.cache/corpus)
#   SAE_DOWNLOAD_CACHE  where .deb files are downloaded and unpacked (default: $REPO/.cache/downloads)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CORPUS="${SAE_CORPUS:-$REPO/.cache/corpus}"
DL="${SAE_DOWNLOAD_CACHE:-$REPO/.cache/downloads}"
PACKAGES=(fortunes fortunes-min jargon-text)

if [[ -f "$CORPUS/.complete" ]]; then
    echo "fetch-corpus: corpus already in $CORPUS"
    exit 0
fi

debs="$DL/debs"
mkdir -p "$debs"
missing=()
for p in "${PACKAGES[@]}"; do
    compgen -G "$debs/${p}_*.deb" >/dev/null || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "fetch-corpus: downloading ${missing[*]}"
    # apt-get download writes into the current folder; refresh the package lists only if it fails.
    if ! (cd "$debs" && apt-get download "${missing[@]}" 2>/dev/null); then
        echo "fetch-corpus: apt-get download failed; running apt-get update and retrying"
        apt-get update -qq
        (cd "$debs" && apt-get download "${missing[@]}")
    fi
fi

root="$DL/debs-unpacked"
rm -rf "$root"
mkdir -p "$root"
for deb in "$debs"/*.deb; do
    dpkg-deb -x "$deb" "$root"
done

tmp="$CORPUS.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
python3 - "$root" "$tmp" <<'PY'
import gzip, json, os, sys

root, out = sys.argv[1], sys.argv[2]
fortunes = os.path.join(root, "usr/share/games/fortunes")
# Collections that are pictures or non-English are left out.
skip = {"ascii-art", "translate-me"}
docs = 0
for name in sorted(os.listdir(fortunes)):
    path = os.path.join(fortunes, name)
    if name.endswith(".dat") or name.endswith(".u8") or name in skip or os.path.islink(path):
        continue
    with open(path, "rb") as f:
        raw = f.read().decode("utf-8", errors="replace")
    entries = [e.strip("\n") for e in raw.split("\n%\n")]
    entries = [e.rstrip("%").strip() for e in entries]
    entries = [e for e in entries if e]
    with open(os.path.join(out, f"fortunes-{name}.jsonl"), "w", encoding="utf-8") as f:
        for e in entries:
            f.write(json.dumps({"text": e}, ensure_ascii=False) + "\n")
    docs += len(entries)
with gzip.open(os.path.join(root, "usr/share/doc/jargon-text/jargon.txt.gz"), "rb") as f:
    jargon = f.read().decode("utf-8", errors="replace")
with open(os.path.join(out, "jargon.txt"), "w", encoding="utf-8") as f:
    f.write(jargon)
print(f"fetch-corpus: {docs} fortunes + the jargon file")
PY
touch "$tmp/.complete"
rm -rf "$CORPUS"
mv "$tmp" "$CORPUS"
echo "fetch-corpus: corpus in $CORPUS"
