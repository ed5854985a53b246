#!/usr/bin/env bash
# Build keel's container image without a Docker engine: podman with chroot isolation, from a local base image.
#
#   scripts/build-image.sh [--tag IMAGE] [--model DIR] [--base IMAGE] [--rebuild-base] [--base-only]
#
# The base (Debian bookworm + its Python 3.11 + libgomp for LightGBM) is made once with debootstrap and cached as a
# tarball (KEEL_IMAGE_CACHE, default ~/.cache/keel-image), then imported into podman's storage. --base skips that
# and uses any image podman already has (e.g. python:3.11-slim-bookworm where a registry is reachable).
# RUN steps reach the package index through this machine's CA bundle, mounted read-only into the build.
# --model bakes a directory made by `keel models export` (it must lie inside the repository, the build context).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${KEEL_IMAGE:-localhost/keel:dev}"
BASE_IMAGE="${KEEL_BASE_IMAGE:-}"
MODEL=""
REBUILD_BASE=0
BASE_ONLY=0
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${KEEL_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keel-image}"
CERTS="${KEEL_CA_DIR:-/etc/ssl/certs}"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --tag) IMAGE="$2"; shift 2 ;;
        --model) MODEL="$2"; shift 2 ;;
        --base) BASE_IMAGE="$2"; shift 2 ;;
        --rebuild-base) REBUILD_BASE=1; shift ;;
        --base-only) BASE_ONLY=1; shift ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

need_packages=()
command -v podman >/dev/null 2>&1 || need_packages+=(podman)
command -v debootstrap >/dev/null 2>&1 || [[ -n "$BASE_IMAGE" ]] || need_packages+=(debootstrap)
if [[ ${#need_packages[@]} -gt 0 ]]; then
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "build-image.sh: install ${need_packages[*]} (Debian packages) or run as root" >&2
        exit 1
    fi
    log "installing ${need_packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
fi

build_base() {
    # A minimal Debian with the distribution's Python 3.11; the Dockerfile installs everything else with uv.
    local tarball="$CACHE/base-$SUITE.tar"
    if [[ "$REBUILD_BASE" -eq 1 || ! -s "$tarball" ]]; then
        mkdir -p "$CACHE"
        local root
        root="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
        # shellcheck disable=SC2064 # expand now: the path is fixed
        trap "rm -rf '$root'" EXIT
        log "debootstrap $SUITE from $MIRROR (a few minutes, once)"
        debootstrap --variant=minbase \
            --include=python3,python3-venv,ca-certificates,libgomp1 \
            "$SUITE" "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
            || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
        chroot "$root" python3 --version >&2
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
        tar -C "$root" --numeric-owner -cf "$tarball.part" .
        mv "$tarball.part" "$tarball"
        rm -rf "$root"
        trap - EXIT
    fi
    log "importing the base image $1"
    podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        "$tarball" "$1" >/dev/null
}

if [[ -z "$BASE_IMAGE" ]]; then
    BASE_IMAGE="localhost/keel-base:$SUITE-py311"
    if [[ "$REBUILD_BASE" -eq 1 ]] || ! podman image exists "$BASE_IMAGE"; then
        build_base "$BASE_IMAGE"
    fi
fi

[[ "$BASE_ONLY" -eq 0 ]] || { log "base image $BASE_IMAGE ready"; exit 0; }

build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
if [[ -n "$MODEL" ]]; then
    [[ -f "$MODEL/manifest.json" && -f "$MODEL/registry.json" ]] || {
        echo "build-image.sh: $MODEL is not a \`keel models export\` folder (manifest.json, registry.json)" >&2
        exit 1
    }
    model_rel="$(realpath --relative-to=. "$MODEL")"
    [[ "$model_rel" != ..* ]] || { echo "build-image.sh: --model must lie inside $(pwd)" >&2; exit 1; }
    build_args+=(--build-arg "MODEL=$model_rel")
fi

log "building $IMAGE from $BASE_IMAGE"
podman build \
    --isolation=chroot \
    --format=docker \
    --pull=never \
    --volume "$CERTS:/etc/ssl/certs:ro" \
    "${build_args[@]}" \
    --tag "$IMAGE" \
    --file Dockerfile \
    .
log "built $IMAGE"
