#!/bin/bash
# One-shot service of docker-compose.yml: writes the network config (<prefix>/config) to etcd with `weft network set`,
# which validates it first. WEFT_BACKEND=udp|vxlan|geneve picks config/network-<backend>.json; WEFT_NETWORK_CONFIG
# (a JSON string) replaces it entirely. Retries while etcd is still starting (bounded).
set -euo pipefail

backend="${WEFT_BACKEND:-udp}"
if [ -n "${WEFT_NETWORK_CONFIG:-}" ]; then
  config="$WEFT_NETWORK_CONFIG"
else
  case "$backend" in
    udp | vxlan | geneve) config="@/opt/weft/config/network-$backend.json" ;;
    *) echo "compose-netconf: WEFT_BACKEND=$backend: expected udp, vxlan or geneve" >&2; exit 2 ;;
  esac
fi
for ((i = 0; i < 50; i++)); do
  if node /opt/weft/dist/src/cli/main.js network set "$config"; then
    node /opt/weft/dist/src/cli/main.js network get
    exit 0
  fi
  sleep 0.5
done
echo "compose-netconf: could not write the network config after 50 tries" >&2
exit 1
