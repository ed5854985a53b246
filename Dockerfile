# keel's model service. Build with Docker (BuildKit) or, where no engine runs, with scripts/build-image.sh (podman).
#
#   docker build -t keel .                                       # serve a registry mounted or reached at run time
#   keel models export adult-income@champion -o models/adult     # or bake one verified version in:
#   docker build -t keel:adult --build-arg MODEL=models/adult .
#
# BASE_IMAGE must be a Debian-based image with Python 3.11 (python3.11 on PATH), e.g. the default or a local base.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# uv comes from the package index, pinned, so the build needs no other image than BASE_IMAGE.
ARG UV_VERSION=0.13.9
# UV_SYSTEM_CERTS / PIP_CERT: trust the system CA bundle (a proxy's CA added there is honoured too).
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_SYSTEM_CERTS=1 \
    UV_PYTHON=python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/keel/venv \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3.11 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}" \
    && ln -s /opt/uv/bin/uv /usr/local/bin/uv

WORKDIR /src
# Dependencies first (their layer survives source edits), exactly as locked, without the dev groups.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project
# Then the project itself, as a regular (non-editable) install: the runtime needs no source tree.
COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable \
    && /opt/keel/venv/bin/keel --version

# Optionally bake one exported version (`keel models export … -o models/NAME`, inside the build context) and
# verify it here, so a broken or tampered export fails the build rather than the service.
ARG MODEL=""
RUN --mount=type=bind,source=.,target=/context \
    mkdir -p /opt/keel \
    && if [ -n "${MODEL}" ]; then \
        cp -r "/context/${MODEL}" /opt/keel/model \
        && /opt/keel/venv/bin/python -c "import pathlib, keel.io.exports as e; \
m = e.load_exported(pathlib.Path('/opt/keel/model'))[1]; print(f'baked {m[\"name\"]}:{m[\"version\"]}')"; \
    fi

FROM ${BASE_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# LightGBM needs the OpenMP runtime; a python:*-slim base lacks it (the local Debian base already has it).
# hadolint ignore=DL3008
RUN if ! ldconfig -p | grep -q 'libgomp\.so\.1 '; then \
        apt-get update \
        && apt-get install -y --no-install-recommends libgomp1 \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --gid 10001 keel \
    && useradd --uid 10001 --gid keel --home-dir /var/lib/keel --create-home --shell /usr/sbin/nologin keel

COPY --from=builder /opt/keel /opt/keel

ARG MODEL=""
# KEEL_MODEL_DIR is set only when a model was baked; otherwise serve uses the registry: KEEL_WORKSPACE (mount a
# workspace at /var/lib/keel/workspace) or MLFLOW_TRACKING_URI.
ENV PATH=/opt/keel/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KEEL_WORKSPACE=/var/lib/keel/workspace \
    KEEL_MODEL_DIR=${MODEL:+/opt/keel/model}

USER 10001:10001
WORKDIR /var/lib/keel
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
ENTRYPOINT ["keel"]
CMD ["serve", "--host", "0.0.0.0"]
