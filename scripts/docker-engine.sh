#!/usr/bin/env bash
# A private Docker engine for weft's compose test: containerd + dockerd with every path (data root, exec root,
# pidfiles, sockets) in one temp folder and the API on a private socket, so a system engine is never touched.
#
#   scripts/docker-engine.sh start        installs docker.io containerd docker-compose when missing, starts the
#                                         engine, waits for `docker info`, prints shell lines to stdout:
#                                           WEFT_DOCKER_DIR=<dir>
#                                           DOCKER_HOST=unix://<dir>/docker.sock
#   scripts/docker-engine.sh stop <dir>   kills that engine's dockerd and containerd by PID, unmounts what they left
#                                         under <dir>, removes <dir>
#
# dockerd runs with --iptables=false --ip-forward=false --bridge=none: it changes no host firewall or sysctl and makes
# no docker0; compose's own bridge networks still work (no NAT, which the overlay test does not need).
set -euo pipefail

log() { echo "docker-engine: $*" >&2; }

install_missing() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v containerd >/dev/null 2>&1 || missing+=(containerd)
  command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then log "needs root to install ${missing[*]}"; return 1; fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Debian's docker.io enables a systemd unit; policy-rc.d keeps it from starting a system engine on install.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; made_policy=1; fi
  local rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || rc=$?
  [ "$made_policy" = 1 ] && rm -f "$policy"
  return "$rc"
}

# Waits (bounded) for a pid to exit; SIGKILL after the grace period.
stop_pid() {
  local pid="$1" name="$2" i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  log "$name ($pid) did not stop in 10 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

stop_engine() {
  local dir="$1"
  [ -d "$dir" ] || { log "no engine folder $dir"; return 0; }
  [ -f "$dir/weft-docker-engine" ] || { log "$dir is not a folder made by this script: not touching it"; return 1; }
  # dockerd stops its containers (and their shims) on SIGTERM; containerd goes after it.
  stop_pid "$(cat "$dir/dockerd.pid" 2>/dev/null || true)" dockerd
  stop_pid "$(cat "$dir/containerd.pid" 2>/dev/null || true)" containerd
  # Shims that outlived containerd (they are in our folder's cgroup-less world, found by their -address argument).
  local p
  for p in $(pgrep -f "containerd-shim.*-address $dir/containerd.sock" 2>/dev/null || true); do stop_pid "$p" shim; done
  # Overlay mounts, netns bind mounts, shm: deepest first.
  local m
  while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(
    awk -v d="$dir" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r
  )
  rm -rf "$dir"
}

start_engine() {
  install_missing || { log "docker cannot be installed"; exit 3; }
  [ "$(id -u)" = 0 ] || { log "starting dockerd needs root"; exit 3; }
  local dir
  dir="$(mktemp -d "${TMPDIR:-/tmp}/weft-docker.XXXXXX")"
  touch "$dir/weft-docker-engine"
  trap 'stop_engine "$dir"' ERR
  mkdir -p "$dir/containerd-root" "$dir/containerd-state" "$dir/data" "$dir/exec"
  cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$dir/containerd-root"
state = "$dir/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
  echo '{}' >"$dir/daemon.json"
  containerd --config "$dir/containerd.toml" >"$dir/containerd.log" 2>&1 &
  echo $! >"$dir/containerd.pid"
  local i
  for i in $(seq 1 100); do [ -S "$dir/containerd.sock" ] && break; sleep 0.1; done
  [ -S "$dir/containerd.sock" ] || { log "containerd did not start: $(tail -5 "$dir/containerd.log")"; false; }

  dockerd \
    --config-file "$dir/daemon.json" \
    --containerd "$dir/containerd.sock" \
    --data-root "$dir/data" \
    --exec-root "$dir/exec" \
    --pidfile "$dir/dockerd.pid" \
    --host "unix://$dir/docker.sock" \
    --iptables=false --ip-forward=false --ip-masq=false --bridge=none --userland-proxy=false \
    >"$dir/dockerd.log" 2>&1 &
  local pid=$!
  for i in $(seq 1 300); do
    if DOCKER_HOST="unix://$dir/docker.sock" docker info >/dev/null 2>&1; then break; fi
    kill -0 "$pid" 2>/dev/null || { log "dockerd exited: $(tail -5 "$dir/dockerd.log")"; false; }
    sleep 0.1
  done
  if ! DOCKER_HOST="unix://$dir/docker.sock" docker info >/dev/null 2>&1; then
    log "dockerd not ready in 30 s: $(tail -5 "$dir/dockerd.log")"
    false
  fi
  # dockerd writes its own pidfile; keep ours in case it has not yet.
  [ -s "$dir/dockerd.pid" ] || echo "$pid" >"$dir/dockerd.pid"
  trap - ERR
  log "engine up in $dir"
  echo "WEFT_DOCKER_DIR=$dir"
  echo "DOCKER_HOST=unix://$dir/docker.sock"
}

case "${1:-}" in
  start) start_engine ;;
  stop)
    [ -n "${2:-${WEFT_DOCKER_DIR:-}}" ] || { log "usage: $0 stop <dir>"; exit 2; }
    stop_engine "${2:-$WEFT_DOCKER_DIR}"
    ;;
  *) echo "usage: $0 start | stop <dir>" >&2; exit 2 ;;
esac
