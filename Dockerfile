# One image for every SAIR part: `sair webhook | device-plugin | policy | start`.
# Stage 1 compiles the CUDA shim against the CUDA driver API headers (no link-time CUDA
# dependency: the shim resolves libcuda at run time). Ubuntu 20.04's glibc 2.31 keeps the shim
# loadable in the older user images it is preloaded into.
FROM nvidia/cuda:12.4.1-devel-ubuntu20.04 AS shim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends make gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY native/ native/
RUN make -C native clean && make -C native CUDA_HOME=/usr/local/cuda \
 && test -f native/build/libsair-cuda.so

# Stage 2 compiles the TypeScript and keeps production dependencies only.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src/ src/
RUN npx tsc -p tsconfig.build.json \
 && npm prune --omit=dev --ignore-scripts \
 && npm rebuild koffi

# Runtime: Node 24, the compiled CLI, production node_modules and the shim the device plugin
# installs on each GPU node (/opt/sair/lib/libsair-cuda.so -> /var/lib/sair/lib on the host).
FROM node:24-bookworm-slim
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
