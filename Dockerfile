# weft in a container: `docker build .` (or `docker compose build`, see docker-compose.yml).
#
# Two ways to build, chosen with the target:
#   runtime (default)   builds from source in the image: a build stage with python3/make/g++ and the OpenSSL and
#                       libsodium headers compiles the native addon during `npm ci` and TypeScript to dist/; the
#                       runtime stage gets iproute2, ping, iperf3, etcd and the addon's libssl3 and libsodium23 from
#                       Debian. Needs BASE_IMAGE to be Debian with Node 20 (node:20-bookworm-slim) and
#                       network access to Debian's and npm's registries.
#   prebuilt            for machines that can pull nothing: copies a tree built outside the image
#                       (scripts/compose-prebuilt.sh stages dist/, the addon, production node_modules into
#                       build/docker-prebuilt/) onto a local base image that already has node and the tools
#                       (scripts/build-base-image.sh -> BASE_IMAGE=weft-base:local). No compiler, no network.
# The prebuilt stage comes first on purpose: the classic builder (docker-compose v1) builds every stage up to the
# target, so `--target prebuilt` never touches the stages that need the network.
ARG BASE_IMAGE=node:20-bookworm-slim

FROM ${BASE_IMAGE} AS prebuilt
WORKDIR /opt/weft
# The trailing-bracket glob lets this stage build (empty) when nothing is staged, e.g. while building `runtime`
# with the classic builder, which walks through this stage too.
COPY package.json build/docker-prebuil[t] ./
# `weft` on PATH for `docker-compose exec <host> weft status ...` (main.js's shebang runs node with the
# ENTRYPOINT's flags).
RUN ln -s /opt/weft/dist/src/cli/main.js /usr/local/bin/weft
ENTRYPOINT ["node", "--max-semi-space-size=1", "--v8-pool-size=1", "--heap-growing-percent=50", \
            "--no-opt", "--no-sparkplug", \
            "/opt/weft/dist/src/cli/main.js"]
CMD ["daemon"]

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ libssl-dev libsodium-dev \
 && rm -rf /var/lib/apt/lists/*
# node-gyp takes the headers of the Node in the image instead of downloading them.
ENV npm_config_nodedir=/usr/local
WORKDIR /src
COPY package.json package-lock.json binding.gyp tsconfig.json ./
COPY native ./native
# "gypfile": true: npm ci compiles the addon to build/Release/weft.node.
RUN npm ci --no-audit --no-fund
COPY src ./src
COPY testbed ./testbed
COPY bench ./bench
RUN npx tsc -p tsconfig.json && chmod +x dist/src/cli/main.js && npm prune --omit=dev --no-audit --no-fund

FROM ${BASE_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 iputils-ping iperf3 etcd-server etcd-client libssl3 \
    libsodium23 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/weft
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/build/Release/weft.node ./build/Release/weft.node
COPY --from=build /src/dist ./dist
COPY config ./config
COPY scripts/compose-host.sh scripts/compose-netconf.sh ./scripts/
RUN ln -s /opt/weft/dist/src/cli/main.js /usr/local/bin/weft
ENTRYPOINT ["node", "--max-semi-space-size=1", "--v8-pool-size=1", "--heap-growing-percent=50", \
            "--no-opt", "--no-sparkplug", \
            "/opt/weft/dist/src/cli/main.js"]
CMD ["daemon"]
