#!/usr/bin/env bash
# Stages the "prebuilt" build context of the Dockerfile (target prebuilt) in build/docker-prebuilt/: dist/, the
# native addon, production node_modules, config/ and the compose entrypoints, all built on this machine by
# scripts/setup.sh. For machines that can pull nothing; pair it with BASE_IMAGE=weft-base:local
# (scripts/build-base-image.sh), whose node and glibc are this machine's, so the addon loads as built.
set -euo pipefail
cd "$(dirname "$0")/.."
for f in dist/src/cli/main.js build/Release/weft.node node_modules/.package-lock.json; do
  [ -e "$f" ] || { echo "compose-prebuilt: $f is missing: run scripts/setup.sh first" >&2; exit 1; }
done
stage=build/docker-prebuilt
inputs=(package.json package-lock.json dist config build/Release/weft.node node_modules/.package-lock.json
  scripts/compose-host.sh scripts/compose-netconf.sh)
if [ -f "$stage/.staged" ] && [ -z "$(find "${inputs[@]}" -newer "$stage/.staged" -print -quit)" ]; then
  echo "compose-prebuilt: $stage is up to date" >&2
  exit 0
fi
tmp="$(mktemp -d build/.docker-prebuilt.XXXXXX)"
chmod 755 "$tmp"
# Stamped before copying: an input changed while we copy is newer than the stamp, so the next run stages again.
touch "$tmp/.staged"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/build/Release" "$tmp/scripts"
cp -a package.json package-lock.json dist config "$tmp/"
mkdir -p "$tmp/node_modules"
cp build/Release/weft.node "$tmp/build/Release/"
cp scripts/compose-host.sh scripts/compose-netconf.sh "$tmp/scripts/"
# Production dependencies only, as package-lock.json lists them (entries not marked dev); copying just those is
# much faster than copying node_modules and pruning it. A nested package comes along with its parent folder.
node -e '
  const lock = require("./package-lock.json");
  const paths = Object.entries(lock.packages ?? {})
    .filter(([p, v]) => p.startsWith("node_modules/") && v.dev !== true && v.link !== true)
    .map(([p]) => p).sort();
  const top = paths.filter((p) => !paths.some((q) => q !== p && p.startsWith(q + "/")));
  process.stdout.write(top.join("\n") + "\n");
' | while read -r dep; do
  [ -n "$dep" ] || continue
  if [ ! -e "$dep" ]; then
    echo "compose-prebuilt: $dep is in package-lock.json but not installed: run scripts/setup.sh" >&2
    exit 1
  fi
  mkdir -p "$tmp/$(dirname "$dep")"
  cp -a "$dep" "$tmp/$dep"
done
rm -rf "$stage"
mv "$tmp" "$stage"
trap - EXIT
echo "compose-prebuilt: staged $stage ($(du -sh "$stage" | cut -f1))" >&2
