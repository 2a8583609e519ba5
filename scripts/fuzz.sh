#!/usr/bin/env bash
# Builds weft's libFuzzer harnesses (native/fuzz/*.c over the C core, never the N-API binding) and optionally runs
# them, each bounded in time. Installs clang from Debian when missing.
#
#   scripts/fuzz.sh build                 build every target into build/fuzz/
#   scripts/fuzz.sh run [SECONDS] [T...]  build, then run each target (or the named ones) SECONDS (default 40) on a
#                                         scratch copy of native/fuzz/corpus/<target>; a crash leaves its input in
#                                         build/fuzz/crash-<target>-* and exits non-zero
#   scripts/fuzz.sh targets               list the targets
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-build}"
out=build/fuzz
mkdir -p "$out"

# The C core every harness links against (no N-API); tun.c, udp.c and queue.c only for symbols the others use.
core=(native/csum.c native/ipv4.c native/ipv6.c native/encap.c native/encap_udp.c native/encap_vxlan.c
  native/encap_geneve.c
  native/icmp.c native/icmp6.c native/gso.c native/gro.c native/queue.c native/tun.c native/udp.c native/wg.c)
# target -> harness source and extra defines. fuzz_decap.c is built once per encap; every other
# native/fuzz/fuzz_<name>.c is target <name>, picked up by the glob below.
declare -A SRC=(
  [decap_udp]="native/fuzz/fuzz_decap.c -DWEFT_FUZZ_ENCAP=WEFT_ENCAP_UDP"
  [decap_vxlan]="native/fuzz/fuzz_decap.c -DWEFT_FUZZ_ENCAP=WEFT_ENCAP_VXLAN"
  [decap_geneve]="native/fuzz/fuzz_decap.c -DWEFT_FUZZ_ENCAP=WEFT_ENCAP_GENEVE"
)
targets=(decap_udp decap_vxlan decap_geneve)
for f in native/fuzz/fuzz_*.c; do
  t=$(basename "$f" .c); t=${t#fuzz_}
  [ "$t" = decap ] && continue
  SRC[$t]="$f"
  targets+=("$t")
done

if [ "$what" = targets ]; then printf '%s\n' "${targets[@]}"; exit 0; fi

# clang alone lacks libFuzzer and the sanitizer runtimes: Debian ships them in libclang-rt-<major>-dev.
have_fuzzer_rt() {
  command -v clang >/dev/null 2>&1 && [ -f "$(clang -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a" ]
}
if ! have_fuzzer_rt; then
  if [ "$(id -u)" != 0 ]; then
    echo "weft fuzz: clang with libFuzzer is missing and only root can install it" >&2
    exit 3
  fi
  echo "weft fuzz: installing clang and its libFuzzer runtime" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }
  { command -v clang >/dev/null 2>&1 ||
    { apt_get update -qq && apt_get install -y -qq --no-install-recommends clang >/dev/null; }; } ||
    { echo "weft fuzz: could not install clang" >&2; exit 3; }
  major=$(clang -dumpversion | cut -d. -f1)
  { apt_get install -y -qq --no-install-recommends "libclang-rt-$major-dev" >/dev/null ||
    { apt_get update -qq && apt_get install -y -qq --no-install-recommends "libclang-rt-$major-dev" >/dev/null; }; } ||
    { echo "weft fuzz: could not install libclang-rt-$major-dev" >&2; exit 3; }
fi

# Up to one compiler per core: `later CMD...` starts CMD in the background, `settle` waits for all of them and fails
# when any did.
jobs_max=$(nproc)
failed=0
later() {
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || failed=1; done
  "$@" &
}
settle() {
  while [ -n "$(jobs -rp)" ]; do wait -n || failed=1; done
  wait || failed=1
  [ "$failed" = 0 ] || { echo "weft fuzz: a build failed (above)" >&2; exit 1; }
}
flags=(-g -O1 -std=c11 -D_GNU_SOURCE -fno-sanitize-recover=undefined -Inative)
# The core is compiled once, with the sanitizers and libFuzzer's coverage hooks (fuzzer-no-link), and every harness
# links the same objects; rebuilt only when a source is newer than its object or binary.
for c in "${core[@]}"; do
  o="$out/core-$(basename "$c" .c).o"
  [ -f "$o" ] && [ -z "$(find native/*.h "$c" -newer "$o" 2>/dev/null | head -1)" ] && continue
  later clang "${flags[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$c" -o "$o"
done
settle
objs=()
for c in "${core[@]}"; do objs+=("$out/core-$(basename "$c" .c).o"); done
for t in "${targets[@]}"; do
  bin="$out/fuzz_$t"
  if [ -x "$bin" ] && [ -z "$(find native/*.c native/*.h native/fuzz/*.c -newer "$bin" 2>/dev/null | head -1)" ]; then
    continue
  fi
  # shellcheck disable=SC2086 # SRC holds a file and its -D flags, split on purpose
  later clang "${flags[@]}" -fsanitize=fuzzer,address,undefined ${SRC[$t]} "${objs[@]}" -lcrypto -lsodium -o "$bin"
done
settle
[ "$what" = build ] && { echo "weft fuzz: built ${targets[*]} in $out"; exit 0; }

if [ "$what" = run ]; then
  secs="${2:-40}"
  shift $(( $# >= 2 ? 2 : $# ))
  [ $# -gt 0 ] && targets=("$@")
  status=0
  for t in "${targets[@]}"; do
    work=$(mktemp -d)
    [ -d native/fuzz/corpus/"$t" ] && cp native/fuzz/corpus/"$t"/* "$work"/
    # -max_total_time bounds the run; crashes land in build/fuzz with the target's name.
    if ! "$out/fuzz_$t" -max_total_time="$secs" -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 \
        -artifact_prefix="$out/crash-$t-" "$work" 2>"$out/$t.log"; then
      echo "weft fuzz: $t FAILED, see $out/$t.log" >&2; status=1
    fi
    runs=$(grep -o 'Done [0-9]* runs' "$out/$t.log" | grep -o '[0-9]*' || echo '?')
    echo "weft fuzz: $t: $runs executions in ${secs}s"
    rm -rf "$work"
  done
  exit $status
fi
echo "usage: scripts/fuzz.sh build | run [SECONDS] [TARGET...] | targets" >&2; exit 2
