#!/usr/bin/env bash
# Lines of at most 120 characters in every tracked source file (Prettier wraps code; strings, comments and C it
# leaves alone). Counts characters, not bytes (box-drawing lines are UTF-8). Prints the offenders and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
long=$(git ls-files -co --exclude-standard -- '*.ts' '*.mjs' '*.js' '*.c' '*.h' '*.sh' '*.json' '*.yml' Dockerfile \
  ':!:bench/results/**' ':!:package-lock.json' ':!:test/fixtures/**' |
  xargs -r perl -CSD -lne 'printf "%s:%d: %d characters\n", $ARGV, $., length if length > 120; close ARGV if eof')
if [ -n "$long" ]; then
  printf '%s\n' "$long" >&2
  echo "weft: lines over 120 characters (above)" >&2
  exit 1
fi
