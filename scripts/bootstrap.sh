#!/usr/bin/env bash
# Installs what duragent needs on a fresh machine, reusing what is already there:
# uv (from PyPI when missing), the locked Python environment, the pinned Temporal CLI in
# the per-user cache (~/.cache/duragent/bin; built once with Go, minutes), and
# bubblewrap from apt for the shell sandbox, Prometheus from apt for the observability
# tests and Chromium with its driver from apt for the console's browser tests (each only
# when missing and apt can run), and SeaweedFS for the object store tests (built with
# Go, once).
# Prints the command that runs uv, for the Makefile. `bootstrap.sh test` also installs
# what only the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
# Trust the system's certificate store, as pip does: behind a TLS-inspecting proxy the
# bundled roots of uv would refuse the registry.
export UV_SYSTEM_CERTS="${UV_SYSTEM_CERTS:-1}"

find_uv() {
  if command -v uv >/dev/null 2>&1; then echo uv; return; fi
  if [ -x "$HOME/.local/bin/uv" ]; then echo "$HOME/.local/bin/uv"; return; fi
  if python3 -m uv --version >/dev/null 2>&1; then echo "python3 -m uv"; return; fi
  return 1
}

if ! UV=$(find_uv); then
  echo "bootstrap: installing uv from PyPI (once)" >&2
  python3 -m pip install --quiet --user uv >&2 || python3 -m pip install --quiet uv >&2
  UV=$(find_uv) || { echo "bootstrap: uv was installed but cannot be run" >&2; exit 1; }
fi

# With bytecode: where PYTHONDONTWRITEBYTECODE=1 is set (many CI runners and images),
# Python never caches any, and every process (each CLI call, each worker) compiled
# temporalio, openai and pydantic from source again: 5.4 s of CPU to import the worker
# against 2.8 s with bytecode. Compiled once (~20 s); a later sync keeps it.
$UV sync --frozen --quiet --compile-bytecode >&2
$UV run --frozen python -c \
  "from duragent.worker.devserver import ensure_temporal_cli; ensure_temporal_cli()" >&2

# System packages from apt: only when missing, only where apt-get can run as root,
# never fatal (what is missing makes its tests skip and say why).
apt_install() { # apt_install PACKAGE WHAT-HAPPENS-WITHOUT-IT
  command -v apt-get >/dev/null 2>&1 || return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    sudo -n true 2>/dev/null || return 0
    sudo="sudo -n"
  fi
  echo "bootstrap: installing $1 with apt-get (once)" >&2
  if ! { $sudo apt-get update -qq &&
    $sudo env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "$1"; } >/dev/null 2>&1; then
    echo "bootstrap: $1 could not be installed; $2" >&2
  fi
}

# bubblewrap (bwrap), the shell sandbox: without it shell commands run unconfined (the
# worker warns at start). The demo runs shell commands, so `make demo` installs it too.
command -v bwrap >/dev/null 2>&1 ||
  apt_install bubblewrap "shell commands will run without a sandbox"

# Prometheus (and promtool) for the observability tests: a real server scrapes a worker.
# Only the tests need it: `make demo` does not wait for apt.
if [ "${1:-}" = "test" ] && ! command -v prometheus >/dev/null 2>&1; then
  apt_install prometheus "its tests will skip"
fi

# Chromium and its driver for the web console's browser tests (Selenium drives Debian's
# chromedriver; no browser is downloaded at run time). Only the tests need them.
if [ "${1:-}" = "test" ]; then
  command -v chromium >/dev/null 2>&1 ||
    apt_install chromium "the console's browser tests will skip"
  command -v chromedriver >/dev/null 2>&1 ||
    apt_install chromium-driver "the console's browser tests will skip"
fi

# SeaweedFS, the S3-compatible server of the object store tests, built from the Go module
# proxy into the cache (minutes, once per machine; progress on stderr). Never fatal:
# without Go, or when the build fails, those tests skip and say why.
if [ "${1:-}" = "test" ]; then
  $UV run --frozen python -m tests.objectstore build >&2 ||
    echo "bootstrap: SeaweedFS was not built; the object store tests will skip" >&2
fi
echo "$UV"
