#!/usr/bin/env bash
# Runs tap (arguments passed on) with a temp folder of its own: TMPDIR points there for every test, so the suite's
# last check (test/after/leftovers.ts) sees exactly what this run left behind, not the folders of other runs on the
# same machine. The folder goes when tap ends, whatever the result.
#
# Without arguments (npm test) the suite runs in two passes: first the files in PARALLEL, one per core at a time,
# then every other test file one at a time (package.json's tap.jobs is 1). A file belongs in PARALLEL only when it
# makes no namespace, device, link, route, etcd, daemon or Docker engine and binds no fixed port: pure code, the
# addon's byte functions, loopback sockets on port 0, its own mkdtemp folder. Every other file runs alone, because
# namespace hosts, TUN names and etcd's ports are the machine's, and the throughput and outage tests want the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PARALLEL=(
  test/bench-syscalls.test.ts
  test/cli.test.ts
  test/copies-counted.test.ts
  test/daemon-config.test.ts
  test/encap-codecs.test.ts
  test/encap-native.test.ts
  test/gso-gro-ipv6.test.ts
  test/gso-gro.test.ts
  test/ipv6.test.ts
  test/network-check.test.ts
  test/network-config.test.ts
  test/profile-groups.test.ts
  test/routes.test.ts
  test/routes6.test.ts
  test/subnet.test.ts
  test/userspace-backend.test.ts
  test/wireguard-config.test.ts
  test/wireguard-handshake.test.ts
  test/wireguard-primitives.test.ts
  test/wireguard-transport.test.ts
)
dir="$(mktemp -d "${TMPDIR:-/tmp}/weft-test-run.XXXXXX")"
# --one-file-system: a mount a failed test left inside (a Docker engine's) is not followed into.
trap 'rm -rf --one-file-system "$dir"' EXIT
tap() { TMPDIR="$dir" WEFT_TEST_TMPDIR="$dir" node_modules/.bin/tap "$@"; }
if [ $# -gt 0 ]; then
  tap "$@"
  exit
fi
serial=()
while IFS= read -r f; do
  [[ " ${PARALLEL[*]} " == *" $f "* ]] || serial+=("$f")
done < <(find test -name '*.test.ts' | sort) # package.json's tap.include
# Both passes run, so one report shows every failure; the run fails when either pass failed.
status=0
tap --jobs="$(nproc)" "${PARALLEL[@]}" || status=$?
tap "${serial[@]}" || status=$?
exit "$status"
