# One image for every SAIR part: `sair webhook | device-plugin | policy | certs | check | start`.
# Build it with `npm run image` (docker buildx, --platform); see README "Install in a cluster".
#
# Bases are pinned by exact version tag. NODE_VERSION must equal the `node` devDependency in
# package.json (test/scripts/image.test.ts checks it), so the image runs the Node the tests ran. To pin a digest
# too, pass the one your registry resolves: --build-arg NODE_IMAGE=node:24.21.0-bookworm-slim@sha256:...
ARG NODE_VERSION=24.21.0
ARG NODE_IMAGE=node:${NODE_VERSION}-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.4.1-devel-ubuntu20.04

# Stage 1 compiles the CUDA shim against the CUDA driver API headers (no link-time CUDA
# dependency: the shim resolves libcuda at run time). Ubuntu 20.04's glibc 2.31 keeps the shim
# loadable in the older user images it is preloaded into.
FROM ${CUDA_IMAGE} AS shim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends make gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY native/ native/
RUN make -C native clean && make -C native CUDA_HOME=/usr/local/cuda \
 && test -f native/build/libsair-cuda.so

# Stage 2 compiles the TypeScript and keeps production dependencies only. --ignore-scripts skips
# the `node` devDependency's download: the base image already is that Node version.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src/ src/
RUN npx tsc -p tsconfig.build.json \
 && npm prune --omit=dev --ignore-scripts \
 && npm rebuild koffi

# Runtime: the compiled CLI, production node_modules and the shim the device plugin installs on
# each GPU node (/opt/sair/lib/libsair-cuda.so -> /var/lib/sair/lib on the host).
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules/ node_modules/
COPY --from=build /app/dist/ dist/
COPY --from=shim /src/native/build/libsair-cuda.so /opt/sair/lib/libsair-cuda.so
# The device plugin's gRPC proto definitions are read at run time.
COPY src/device-plugin/proto/ dist/device-plugin/proto/
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["--help"]
