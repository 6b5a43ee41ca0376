#!/usr/bin/env bash
# Builds both radlabel images (connector, llm) on a machine that cannot pull from Docker Hub or reach
# download.pytorch.org but has a Docker daemon, PyPI, and the torch CPU wheel on disk: this project's development
# machines. Production builds need none of this: `docker build -f deploy/Dockerfile .` on a builder that can pull
# python:3.11-slim-bookworm (docs/OPERATIONS.md, "Images").
#
#  - the base is the local stand-in from build-offline-base.sh (built here when missing);
#  - the torch wheel directory is served on a free loopback port for the duration of the llm build and handed to
#    pip through the PIP_FIND_LINKS build arg; the wheel never enters the build context or the image;
#  - BuildKit is required (the legacy builder would build the llm stages for the connector target too, and it
#    ignores deploy/Dockerfile.dockerignore): a Docker CLI with buildx, or a 20.10 CLI with DOCKER_BUILDKIT=1.
#
# Usage (repository root, root): deploy/docker/build-offline.sh [connector|llm|both]   (default both)
#   DOCKER           the docker CLI (default: docker)
#   BASE_IMAGE       default radlabel-base/python:3.11-slim-bookworm
#   TORCH_WHEEL_DIR  a directory holding torch-2.13.0+cpu-*.whl (default /opt/wheels)
#   WHEEL_PORT       loopback port for the wheel directory during the llm build (default 38765)
#   NO_CACHE=1       build without the layer cache (to time a cold build)
set -euo pipefail

WHAT="${1:-both}"
DOCKER="${DOCKER:-docker}"
BASE_IMAGE="${BASE_IMAGE:-radlabel-base/python:3.11-slim-bookworm}"
TORCH_WHEEL_DIR="${TORCH_WHEEL_DIR:-/opt/wheels}"
cd "$(dirname "$0")/../.."
VERSION="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
REVISION="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo -dirty)"
SERVER_PID=""
trap '[[ -n "${SERVER_PID}" ]] && kill "${SERVER_PID}" 2>/dev/null; true' EXIT

"${DOCKER}" image inspect "${BASE_IMAGE}" >/dev/null 2>&1 || DOCKER="${DOCKER}" deploy/docker/build-offline-base.sh "${BASE_IMAGE}"

common=(-f deploy/Dockerfile --network host --build-arg "PYTHON_IMAGE=${BASE_IMAGE}"
        --build-arg "VERSION=${VERSION}" --build-arg "REVISION=${REVISION}"
        --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)")
[[ "${NO_CACHE:-0}" == 1 ]] && common+=(--no-cache)
export DOCKER_BUILDKIT=1

timed() {  # label, command...
    local start=${SECONDS}
    "${@:2}"
    echo "built $1 in $((SECONDS - start)) s"
}

if [[ "${WHAT}" == connector || "${WHAT}" == both ]]; then
    timed "radlabel:${VERSION}" "${DOCKER}" build "${common[@]}" -t "radlabel:${VERSION}" .
fi
if [[ "${WHAT}" == llm || "${WHAT}" == both ]]; then
    compgen -G "${TORCH_WHEEL_DIR}/torch-2.13.0+cpu-*.whl" >/dev/null \
        || { echo "no torch-2.13.0+cpu wheel in ${TORCH_WHEEL_DIR} (set TORCH_WHEEL_DIR)"; exit 2; }
    # A fixed port: the PIP_FIND_LINKS value is part of the layer cache key, so a new port each time would
    # reinstall torch on every build.
    port="${WHEEL_PORT:-38765}"
    (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null && { echo "port ${port} is taken (set WHEEL_PORT)"; exit 2; }
    python3 -m http.server --bind 127.0.0.1 --directory "${TORCH_WHEEL_DIR}" "${port}" >/dev/null 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null && break; sleep 0.1; done
    timed "radlabel-llm:${VERSION}" "${DOCKER}" build "${common[@]}" --target llm \
        --build-arg TORCH_INDEX_URL=https://pypi.org/simple --build-arg "PIP_FIND_LINKS=http://127.0.0.1:${port}/" \
        -t "radlabel-llm:${VERSION}" .
fi
"${DOCKER}" images --filter "reference=radlabel*" --format '{{.Repository}}:{{.Tag}}  {{.Size}}'
