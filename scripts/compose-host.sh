#!/bin/bash
# Entrypoint of a weft host container (docker-compose.yml): runs `weft daemon` (configured by WEFT_*/FLANNELD_*
# in the environment) as the container's main process, and beside it sets up the host's "pod" side once the daemon
# has written subnet.env:
#   cni0        a bridge holding FLANNEL_SUBNET's first address (10.5.N.1/24), as docker0 with --bip or the CNI
#               bridge plugin would. A pod in its own netns needs CAP_SYS_ADMIN, which these containers do not get,
#               so the workload runs here, bound to that address; other hosts reach it through the overlay.
#   iperf3 -s   on that address, for `iperf3 -c <pod ip>` from the other hosts.
#   /run/weft/pod.env   POD_IP=... once all of this is ready (the healthcheck and the compose test wait for it).
# The daemon is exec'd so SIGTERM from `docker stop` (through init: true) reaches it directly and the lease stays.
set -euo pipefail

subnet_file="${WEFT_SUBNET_FILE:-${FLANNELD_SUBNET_FILE:-/run/flannel/subnet.env}}"
state=/run/weft
mkdir -p "$state" "${subnet_file%/*}"
rm -f "$state/pod.env"
# subnet.env may be left from an earlier run of this container; wait for one written after this start.
: >"$state/started"

pod_side() {
  local i
  for ((i = 0; i < 600; i++)); do
    [ "$subnet_file" -nt "$state/started" ] && break
    sleep 0.1
  done
  if ! [ "$subnet_file" -nt "$state/started" ]; then
    echo "compose-host: no subnet.env from the daemon after 60 s; no pod side" >&2
    return 1
  fi
  # shellcheck disable=SC1090
  . "$subnet_file"
  local pod_ip="${FLANNEL_SUBNET%/*}"
  ip link show cni0 >/dev/null 2>&1 || ip link add cni0 type bridge
  ip addr replace "$FLANNEL_SUBNET" dev cni0
  ip link set cni0 up
  if [ "${WEFT_POD_IPERF:-1}" = 1 ]; then
    iperf3 -s -B "$pod_ip" -D --logfile "$state/iperf3.log"
  fi
  echo "POD_IP=$pod_ip" >"$state/pod.env.tmp"
  mv "$state/pod.env.tmp" "$state/pod.env"
  echo "compose-host: pod side ready on cni0 $FLANNEL_SUBNET" >&2
}

pod_side &
# The same node flags as the weft bin's shebang (less idle RSS; the daemon turns V8's compilers on once it is up).
exec node --max-semi-space-size=1 --v8-pool-size=1 --heap-growing-percent=50 --no-opt --no-sparkplug \
  /opt/weft/dist/src/cli/main.js daemon "$@"
