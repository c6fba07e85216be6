#!/usr/bin/env bash
# Browser test of the report dashboard: installs Debian's chromium when missing, then runs
# tests/report_browser.rs, which builds a report from a small synthetic store whose corpus holds
# `<script>alert(1)</script>` and `<img src=x onerror=...>`, opens index.html headless from file://
# and checks that the latents table and a latent's contexts render and that the payloads stay text;
# tests/report_scale_browser.rs checks a 24,576-latent report's index.html size and time to its first card.
#
#   scripts/browser-test.sh            install chromium if needed, run the test
#   scripts/browser-test.sh DIR        also print the rendered DOM of DIR/index.html (a report of yours)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

"$REPO/scripts/install-chromium.sh"

if [[ $# -ge 1 ]]; then
    page="$(cd "$1" && pwd)/index.html"
    [[ -f "$page" ]] || { echo "browser-test: no index.html in $1" >&2; exit 1; }
    profile="$(mktemp -d)"
    trap 'rm -rf "$profile"' EXIT
    chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --disable-quic --no-first-run \
        --user-data-dir="$profile" --dump-dom "file://$page" 2>/dev/null
    exit 0
fi

cargo test --release --test report_browser --test report_scale_browser
