#!/usr/bin/env bash
# Installs what duragent needs on a fresh machine, reusing what is already there:
# uv (from PyPI when missing), the locked Python environment, and the pinned Temporal
# CLI in the per-user cache (~/.cache/duragent/bin; built once with Go, minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

uv_bin() {
  command -v uv 2>/dev/null && return
  for candidate in "$HOME/.local/bin/uv" "$(python3 -m site --user-base 2>/dev/null)/bin/uv"; do
    [ -x "$candidate" ] && { echo "$candidate"; return; }
  done
  return 1
}

if ! UV=$(uv_bin); then
  echo "bootstrap: installing uv from PyPI (once)" >&2
  python3 -m pip install --quiet --user uv >&2
  UV=$(uv_bin) || { echo "bootstrap: uv installed but not found on PATH" >&2; exit 1; }
fi

"$UV" sync --frozen --quiet >&2
"$UV" run --frozen python -c "from worker.devserver import ensure_temporal_cli; ensure_temporal_cli()" >&2
echo "$UV"
