#!/bin/sh
# The DNS operator's repository for the Tilt dev loop (dev/operator/kustomization.yaml reads its
# config/default), cloned once into .dev/homelab-dns-operator (git-ignored) and left as it is
# afterwards: delete the directory to fetch it again. DNS_OPERATOR_REF picks a branch or tag.
set -eu
cd "$(dirname "$0")/.."
target=.dev/homelab-dns-operator
if [ ! -d "$target/config/default" ]; then
  mkdir -p .dev
  git clone --quiet --depth 1 --branch "${DNS_OPERATOR_REF:-main}" \
    https://github.com/morten-olsen/homelab-dns-operator "$target"
fi
echo "$target"
