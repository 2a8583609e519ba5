#!/usr/bin/env bash
# Installs what weft's tests, demo and bench need when it is missing, then builds. Safe to run again: each step
# checks first. Usage: scripts/setup.sh [test|demo|bench]
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-test}"

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "weft: $what needs root (network namespaces, TUN devices); run as root" >&2
    exit 1
  fi
}

# Debian packages, by the command each provides: weft's own features (iproute2; iptables for --ip-masq; the CNI
# plugins weft-cni delegates to), then what the tests, demo and bench run (etcd, traffic and capture tools; sysctl
# for the namespace hosts, openssl for the TLS test's certificates).
declare -A PKG=(
  [ip]=iproute2 [iptables]=iptables [/usr/lib/cni/bridge]=containernetworking-plugins
  [etcd]=etcd-server [etcdctl]=etcd-client [iperf3]=iperf3 [ping]=iputils-ping [tcpdump]=tcpdump
  [ethtool]=ethtool [perf]=linux-perf [sysctl]=procps [openssl]=openssl
)
# Headers the addon builds against (WireGuard's transport crypto: libcrypto, libsodium), by the file each provides.
declare -A HDR=([/usr/include/openssl/evp.h]=libssl-dev [/usr/include/sodium.h]=libsodium-dev)
missing=()
for cmd in "${!PKG[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "$cmd" ] || missing+=("${PKG[$cmd]}")
done
for h in "${!HDR[@]}"; do
  [ -f "$h" ] || missing+=("${HDR[$h]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  need_root
  echo "weft: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt run (unattended upgrades, a parallel setup) instead of failing on its lock.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Runs a step with its output (npm's, ~40 lines of node-gyp's) held back, shown only when the step fails.
quietly() {
  local what="$1" out
  shift
  echo "weft: $what" >&2
  if ! out="$("$@" 2>&1)"; then
    printf '%s\n' "$out" >&2
    echo "weft: $what failed" >&2
    return 1
  fi
}

# Node packages and the native addon (npm ci builds it through binding.gyp).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  quietly "installing node packages and building the native addon (npm ci, about a minute)" \
    npm ci --no-audit --no-fund
fi
addon=build/Release/weft.node
if [ ! -f "$addon" ] || [ -n "$(find native binding.gyp -newer "$addon" 2>/dev/null | head -1)" ]; then
  quietly "building the native addon" npx node-gyp rebuild
fi
# TypeScript to dist/, unless dist/ is newer than every source. A folder's time changes when a file in it is added
# or removed, so those count too. The stamp takes the time the build started: a file saved during the build is
# newer, and the next run builds again.
stamp=dist/.built
if [ ! -f "$stamp" ] || [ -n "$(find src testbed bench tsconfig.json node_modules/.package-lock.json \
  -path bench/results -prune -o -newer "$stamp" -print -quit)" ]; then
  started="$(date +%s.%N)"
  npm run --silent build
  touch -d "@$started" "$stamp"
fi

need_root
# Namespace hosts forward between their pod bridge and the overlay device.
modprobe tun 2>/dev/null || true
[ -e /dev/net/tun ] || { echo "weft: /dev/net/tun is missing" >&2; exit 1; }
