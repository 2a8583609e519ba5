#!/usr/bin/env bash
# Builds a local base image for weft's Dockerfile where nothing can be pulled: `docker import` of a minimal root
# filesystem made from this machine's own binaries (node, iproute2, etcd, etcdctl, iperf3, ping, a shell and a few
# coreutils) and the libraries `ldd` lists for them. About 150 MB, a few seconds.
#
#   scripts/build-base-image.sh [tag]     default tag: weft-base:local (then: BASE_IMAGE=weft-base:local)
#
# Uses DOCKER_HOST like any docker command. Installs the Debian packages that provide the binaries when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-weft-base:local}"

log() { echo "build-base-image: $*" >&2; }

declare -A PKG=(
  [etcd]=etcd-server [etcdctl]=etcd-client [ip]=iproute2 [bridge]=iproute2 [iperf3]=iperf3 [ping]=iputils-ping
)
missing=()
for cmd in "${!PKG[@]}"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG[$cmd]}"); done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
node_bin="$(command -v node)"
node_major="$("$node_bin" -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || { log "node $node_major on this machine; weft needs 20 or later"; exit 1; }

# What a weft host, the etcd service and the compose entrypoints run.
tools=(
  "$node_bin" ip bridge etcd etcdctl iperf3 ping
  sh dash bash cat sleep mkdir rm ls touch env timeout tail head grep sed tr cut date hostname id
  wc sort uname ps seq dirname basename mv cp ln stat readlink chmod find
)

root="$(mktemp -d "${TMPDIR:-/tmp}/weft-base-root.XXXXXX")"
trap 'rm -rf "$root"' EXIT
# Debian's merged /usr: /bin, /sbin, /lib, /lib64 are links into /usr, so both spellings of a path work
# (scripts' #!/bin/bash, ldd's /lib/x86_64-linux-gnu/...).
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bin,etc,tmp,run,var/lib,root,dev,proc,sys}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
chmod 1777 "$root/tmp"

copy_file() {
  # Keeps the path; -L so a symlinked binary (etcd, node alternatives) arrives as the file itself.
  local src="$1"
  [ -e "$root$src" ] && return 0
  mkdir -p "$root$(dirname "$src")"
  cp -L "$src" "$root$src"
}

for t in "${tools[@]}"; do
  path="$(command -v "$t" 2>/dev/null || true)"
  case "$path" in
    /*) ;;
    *) log "skipping $t (not a file on this machine)"; continue ;;
  esac
  copy_file "$path"
  # The libraries the dynamic linker resolves for it (ldd prints "name => /path (addr)" or "/path (addr)").
  while read -r lib; do copy_file "$lib"; done < <(ldd "$path" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }')
done
# The addon's own libraries (WireGuard's transport links libcrypto and libsodium), which no tool above pulls in: the
# image carries the prebuilt addon (scripts/compose-prebuilt.sh) and must resolve what it links.
if [ -f build/Release/weft.node ]; then
  libs="$(ldd build/Release/weft.node 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }')"
  while read -r lib; do if [ -n "$lib" ]; then copy_file "$lib"; fi; done <<<"$libs"
else
  log "build/Release/weft.node is not built: its libraries are not in the image (run scripts/setup.sh first)"
fi
# Where scripts expect them.
[ -e "$root/bin/sh" ] || ln -s /usr/bin/dash "$root/bin/sh"
[ -e "$root/usr/bin/node" ] || ln -s "$node_bin" "$root/usr/bin/node"

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
# iproute2 reads table names from here; an empty folder keeps it quiet.
mkdir -p "$root/etc/iproute2"

tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'WORKDIR /' \
  -c 'CMD ["/bin/sh"]' \
  -m "weft base: node $("$node_bin" -v), iproute2, etcd, iperf3, ping from $(hostname)" \
  - "$tag" >/dev/null
log "built $tag ($(du -sh "$root" | cut -f1))"
