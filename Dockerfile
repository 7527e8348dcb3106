# Regula images (see docs/deploy.md).
#
#   docker build --target cpu -t regula:cpu .   API (and its dashboard), migrations and workers; trains on the oneDNN backend
#   docker build --target gpu -t regula:gpu .   worker on @tensorflow/tfjs-node-gpu (linux/amd64, CUDA 11.2)
#
# Both run `node dist/main.js api | worker | all | migrate` from /app as the unprivileged user
# `node` (uid 1000) and read datasets from DATA_DIR=/data (mount it; nothing is written there).

ARG NODE_IMAGE=node:20-bookworm-slim
# @tensorflow/tfjs-node-gpu 4.22 loads libtensorflow 2.9.1, built against CUDA 11.2 and cuDNN 8.1.
# A later CUDA 11.x / cuDNN 8 runtime image keeps the same library names (untested), e.g. for
# GPUs newer than cuDNN 8.1: --build-arg CUDA_IMAGE=nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04
ARG CUDA_IMAGE=nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04

# The Node.js runtime; also copied into the CUDA images below, so both targets run the same Node.
FROM ${NODE_IMAGE} AS node

# ---------------------------------------------------------------------------------------------
# build: all dependencies, `npm run build` (prisma generate + tsc -> dist/), then production deps.
# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Dependency install scripts stay off for every npm command of this stage (`npm run build` still
# runs the build script itself; ignore-scripts only skips lifecycle scripts). What that skips:
#  - @tensorflow/tfjs-node and @tensorflow/tfjs-node-gpu (optional deps) would each download a
#    libtensorflow (CPU and GPU builds, hundreds of MB). The cpu image trains on the oneDNN backend
#    and drops both packages below; the gpu target runs only the GPU package's script, itself.
#  - @prisma/engines would download Prisma's schema engine, which nothing here executes: the
#    client is generated offline (scripts/prisma-generate.mjs) and migrations are applied by
#    dist/store/migrate.js, plain SQL over `pg`.
#  - msgpackr-extract (bullmq's fast msgpack): its prebuilt linux binaries ship in optional
#    @msgpackr-extract/* packages and are found at load time; the script only compiles a missing
#    one. This is why `--omit=optional` is not used: it would drop those binaries too.
#  - esbuild (dev only, used by tsx in tests) and core-js (prints a banner).
# Setting it as an environment variable also covers the `npm ci` that scripts/ensure.mjs runs if
# it ever judges node_modules stale.
ENV npm_config_ignore_scripts=true \
    npm_config_audit=false \
    npm_config_fund=false \
    npm_config_update_notifier=false \
    CHECKPOINT_DISABLE=1 \
    PRISMA_HIDE_UPDATE_MESSAGE=1
# Regula's oneDNN backend (packages/tfjs-backend-onednn) is a local optional dependency built
# with node-gyp against Debian's oneDNN.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libdnnl-dev g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY packages/ packages/
RUN npm ci
COPY tsconfig.json prisma.config.ts ./
COPY scripts/ scripts/
COPY prisma/ prisma/
COPY src/ src/
COPY web/ web/
COPY datasets/ datasets/
# The native tfjs packages were installed without their binaries; removing them makes the cpu
# image's backend choice explicit (the gpu target installs its own node_modules). `npm run build`
# (scripts/ensure.mjs) builds the oneDNN addon; the test makes a failed build fail the image.
RUN npm run build \
 && test -f packages/tfjs-backend-onednn/build/Release/tfjs_onednn.node \
 && npm prune --omit=dev \
 && rm -rf node_modules/@tensorflow/tfjs-node node_modules/@tensorflow/tfjs-node-gpu \
 && test -f dist/main.js

# ---------------------------------------------------------------------------------------------
# cpu: the default runtime image (API, migrations, CPU workers on the oneDNN backend).
# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS cpu
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data \
    TFJS_BACKEND=auto
# oneDNN's runtime library (libdnnl.so.2) for the onednn backend; `auto` falls back to wasm without it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libdnnl2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
RUN mkdir -p /data && chown node:node /data
# Runtime files only: package.json ("type": "module", and migrate.ts finds the package root by
# it), production node_modules, the migrations and the compiled code. Owned by root, read-only
# for the app user.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules/ node_modules/
COPY --from=build /app/packages/tfjs-backend-onednn/package.json packages/tfjs-backend-onednn/
COPY --from=build /app/packages/tfjs-backend-onednn/dist/ packages/tfjs-backend-onednn/dist/
COPY --from=build /app/packages/tfjs-backend-onednn/build/Release/ packages/tfjs-backend-onednn/build/Release/
COPY --from=build /app/prisma/migrations/ prisma/migrations/
COPY --from=build /app/dist/ dist/
# The dashboard's pages (served at /) and the built-in dataset emnist-sample.
COPY --from=build /app/web/ web/
COPY --from=build /app/datasets/ datasets/
USER node
EXPOSE 3000
# Liveness of the API (the default command). Containers running `worker` or `migrate` serve no
# HTTP and should disable it (docker-compose.yml does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/main.js", "api"]

# ---------------------------------------------------------------------------------------------
# gpu-deps: production node_modules with @tensorflow/tfjs-node-gpu's native parts, on the CUDA base
# ---------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS gpu-deps
ARG DEBIAN_FRONTEND=noninteractive
# A compiler toolchain for node-pre-gyp's --fallback-to-build, used only if the prebuilt
# tfjs-node-gpu addon cannot be downloaded. The CUDA apt sources are dropped first: nothing is
# needed from them, and their signing key has been rotated since some CUDA 11 images were built.
RUN rm -f /etc/apt/sources.list.d/cuda*.list /etc/apt/sources.list.d/nvidia-ml*.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm/ /usr/local/lib/node_modules/npm/
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version
WORKDIR /app
ENV npm_config_audit=false \
    npm_config_fund=false \
    npm_config_update_notifier=false
COPY package.json package-lock.json ./
COPY packages/ packages/
# Production dependencies without install scripts (as in `build`), then the one script needed:
# tfjs-node-gpu's install downloads libtensorflow 2.9.1 (GPU) into deps/ and the prebuilt N-API
# addon into lib/ (network access needed). The CPU package is dropped: it was installed without
# its binaries and the GPU package registers the same 'tensorflow' backend.
RUN npm ci --omit=dev --ignore-scripts \
 && npm rebuild @tensorflow/tfjs-node-gpu \
 && rm -rf node_modules/@tensorflow/tfjs-node \
 && ls node_modules/@tensorflow/tfjs-node-gpu/lib/napi-v*/tfjs_binding.node \
       node_modules/@tensorflow/tfjs-node-gpu/deps/lib/libtensorflow.so.2

# ---------------------------------------------------------------------------------------------
# gpu: worker image on CUDA 11.2 + cuDNN 8 (host: NVIDIA driver >= 460 and the NVIDIA Container Toolkit)
# ---------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS gpu
# TF_FORCE_GPU_ALLOW_GROWTH: TensorFlow otherwise reserves nearly all GPU memory at start-up.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data \
    TFJS_BACKEND=tensorflow-gpu \
    TF_FORCE_GPU_ALLOW_GROWTH=true
COPY --from=node /usr/local/bin/node /usr/local/bin/node
RUN groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --create-home --shell /bin/bash node \
 && mkdir -p /data && chown node:node /data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=gpu-deps /app/node_modules/ node_modules/
COPY --from=build /app/prisma/migrations/ prisma/migrations/
COPY --from=build /app/dist/ dist/
COPY --from=build /app/web/ web/
COPY --from=build /app/datasets/ datasets/
USER node
# Meant for `worker` (no HTTP, hence no HEALTHCHECK); `api` and `migrate` work here too.
CMD ["node", "dist/main.js", "worker"]
