#!/usr/bin/env bash
# Builds a LOCAL STAND-IN for python:3.11-slim-bookworm, for machines that run a Docker engine but cannot pull
# from Docker Hub (the development machines of this project: only PyPI and deb.debian.org are reachable).
# Production builds use the official image (deploy/Dockerfile's default PYTHON_IMAGE); this one exists only so
# that deploy/Dockerfile can be built and its containers run here at all. See docs/OPERATIONS.md, "Built and run
# here".
#
# What it is: a debootstrap'd Debian bookworm minbase with Debian's python3 (3.11.2, the official image builds
# 3.11.x from source into /usr/local), python3-venv, ca-certificates and python-is-python3 (so `python` resolves,
# as in the official image), imported as a single-layer image. Differences from the official image that matter:
# Python lives in /usr/bin, not /usr/local/bin; the image is larger (apt lists/docs trimmed, but perl-base etc.
# stay). Extra CA certificates of this host (/usr/local/share/ca-certificates/*.crt, e.g. an egress proxy's CA)
# are added to the image's trust store and PIP_CERT points pip at it, because pip otherwise trusts only its
# vendored certifi bundle and PyPI would be unreachable through the proxy from inside the build.
#
# Usage: deploy/docker/build-offline-base.sh [TAG]     (root; needs debootstrap and a running dockerd; DOCKER: the CLI)
#   default TAG: radlabel-base/python:3.11-slim-bookworm
# Then: docker build -f deploy/Dockerfile --network host --build-arg PYTHON_IMAGE=<TAG> ...
set -euo pipefail

TAG="${1:-radlabel-base/python:3.11-slim-bookworm}"
DOCKER="${DOCKER:-docker}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WORK="$(mktemp -d /var/tmp/radlabel-base.XXXXXX)"
trap 'rm -rf "${WORK}"' EXIT
ROOTFS="${WORK}/rootfs"

command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install -y debootstrap)"; exit 2; }
"${DOCKER}" info >/dev/null 2>&1 || { echo "no Docker daemon answers on this machine"; exit 2; }

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,python-is-python3 \
    bookworm "${ROOTFS}" "${MIRROR}"

# The host's extra CAs (none on a machine without an intercepting proxy).
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "${ROOTFS}/usr/local/share/ca-certificates/"
    chroot "${ROOTFS}" update-ca-certificates >/dev/null
fi

# Trim what the official slim image does not carry either: apt caches/lists, docs, man pages, locales.
rm -rf "${ROOTFS}"/var/cache/apt/archives/*.deb "${ROOTFS}"/var/lib/apt/lists/* \
       "${ROOTFS}"/usr/share/doc/* "${ROOTFS}"/usr/share/man/* "${ROOTFS}"/usr/share/info/* \
       "${ROOTFS}"/usr/share/locale/* "${ROOTFS}"/var/log/*.log "${ROOTFS}"/var/cache/debconf/*-old
# debootstrap copies the host's resolv.conf/hostname; Docker supplies its own at run time.
: > "${ROOTFS}/etc/resolv.conf"
echo "localhost" > "${ROOTFS}/etc/hostname"

tar --numeric-owner --xattrs -C "${ROOTFS}" -c . | "${DOCKER}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' \
    --message "local stand-in for python:3.11-slim-bookworm (deploy/docker/build-offline-base.sh)" \
    - "${TAG}"

"${DOCKER}" run --rm "${TAG}" python -c 'import ssl, sys, venv; print("base ok:", sys.version.split()[0], ssl.OPENSSL_VERSION)'
