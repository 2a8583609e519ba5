#!/usr/bin/env bash
# Runs tap (arguments passed on) with a temp folder of its own: TMPDIR points there for every test, so the suite's
# last check (test/after/leftovers.ts) sees exactly what this run left behind, not the folders of other runs on the
# same machine. The folder goes when tap ends, whatever the result.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$(mktemp -d "${TMPDIR:-/tmp}/weft-test-run.XXXXXX")"
# --one-file-system: a mount a failed test left inside (a Docker engine's) is not followed into.
trap 'rm -rf --one-file-system "$dir"' EXIT
TMPDIR="$dir" WEFT_TEST_TMPDIR="$dir" node_modules/.bin/tap "$@"
