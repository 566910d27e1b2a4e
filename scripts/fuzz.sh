#!/usr/bin/env bash
# Fuzzes the native API v1 from its OpenAPI document
# (Sources/CountersignServer/Resources/openapi.json) with Schemathesis against a live
# `countersign serve`. Needs the built server (`swift build`) and PyPI for Schemathesis.
#
#   scripts/fuzz.sh                      # uses .build/debug/countersign
#   COUNTERSIGN_BIN=path/to/countersign scripts/fuzz.sh
#   FUZZ_MAX_EXAMPLES=200 scripts/fuzz.sh   # a longer, deeper run
#   FUZZ_SEED=7 scripts/fuzz.sh             # explore: random generation from seed 7
#   FUZZ_KEEP=1 scripts/fuzz.sh             # keep the working folder (reports, server logs)
#
# Deterministic (fixed seed, derandomized generation, pinned Schemathesis), bounded to
# well under 3 minutes on 2 cores. The last line is `N passed, M failed`; the exit
# status is non-zero on any failure. The server is stopped on every exit path.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
BIN="${COUNTERSIGN_BIN:-.build/debug/countersign}"
SCHEMATHESIS_REQUIREMENT="${FUZZ_SCHEMATHESIS:-schemathesis==4.32.5}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/countersign-fuzz.XXXXXX")"
HARNESS_PID=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    # The harness stops the server itself; this covers a harness that was interrupted
    # or killed. Only the processes this script started are signalled, by pid.
    if [ -n "$HARNESS_PID" ] && kill -0 "$HARNESS_PID" 2>/dev/null; then
        kill -TERM "$HARNESS_PID" 2>/dev/null || true
        wait "$HARNESS_PID" 2>/dev/null || true
    fi
    if [ -s "$WORK/server.pid" ]; then
        kill -KILL "$(cat "$WORK/server.pid")" 2>/dev/null || true
    fi
    # On failure the folder (reports, server logs) is kept; the harness printed its path.
    if [ "$status" -eq 0 ] && [ -z "${FUZZ_KEEP:-}" ]; then
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ ! -x "$BIN" ]; then
    echo "fuzz: no server binary at $BIN: run 'swift build' first (or set COUNTERSIGN_BIN)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

# A no-op when the pinned version is already installed.
if ! "$PYTHON" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    "$SCHEMATHESIS_REQUIREMENT" >"$WORK/pip.log" 2>&1; then
    cat "$WORK/pip.log" >&2
    echo "fuzz: could not install $SCHEMATHESIS_REQUIREMENT" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

# In the background so that INT/TERM reach the trap at once, not after the run.
"$PYTHON" Tests/fuzz/fuzz_api.py --bin "$BIN" --tmp "$WORK" "$@" &
HARNESS_PID=$!
set +e
wait "$HARNESS_PID"
STATUS=$?
set -e
HARNESS_PID=""
exit "$STATUS"
