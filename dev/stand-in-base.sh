#!/bin/sh
# A stand-in for the Dockerfile's python base image, made with Debian's debootstrap where no
# registry is reachable (CI, tests/test_image.py): Debian bookworm with python3, python3-venv
# and ca-certificates, `python` on the PATH as the official image has it. Needs root, podman and
# debootstrap (`.ci/run` installs them). About a minute the first time; the root filesystem is
# cached as a tarball in $DNS_SIDECAR_BASE_CACHE and the imported image kept in podman's store.
#   dev/stand-in-base.sh [IMAGE]     (default localhost/dns-sidecar-stand-in-base:bookworm)
# Then: podman build --build-arg PYTHON_IMAGE=IMAGE ...
set -eu
image=${1:-localhost/dns-sidecar-stand-in-base:bookworm}
cache=${DNS_SIDECAR_BASE_CACHE:-/var/cache/dns-sidecar}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
podman=${PODMAN:-podman}

if "$podman" image exists "$image"; then
  echo "$image: already in podman's store"
  exit 0
fi
tarball="$cache/stand-in-base-bookworm.tar"
if [ ! -s "$tarball" ]; then
  mkdir -p "$cache"
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap bookworm into $root (about a minute)"
  debootstrap --variant=minbase \
    --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -n 20 "$cache/debootstrap.log"; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$tarball.partial" . && mv "$tarball.partial" "$tarball"
fi
"$podman" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --quiet "$tarball" "$image" >/dev/null
echo "$image: imported from $tarball"
