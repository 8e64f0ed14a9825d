#!/bin/sh
# Helm post-renderer: the DNS operator's chart, with dns-sidecar added as a native sidecar.
#   helm upgrade --install dns-operator ../homelab-dns-operator/charts/dns-operator \
#     --namespace dns-operator-system --create-namespace --set namespace.create=false ... \
#     --post-renderer manifests/components/native-sidecar/helm-post-renderer.sh
# (the whole command, with the image and issuer settings: docs/deploy.md)
# Helm writes the rendered chart to stdin; this prints it back with this directory's component
# applied by `kubectl kustomize` (the same patch, RBAC, routing ConfigMap and DNSClass as the
# kustomize route), using manifests/operator for where the operator runs.
# DNS_SIDECAR_IMAGE=REGISTRY/dns-sidecar:TAG picks the image (default: dns-sidecar:<version>).
set -eu
manifests=$(CDPATH='' cd -- "$(dirname -- "$0")/../.." && pwd)
# kustomize takes only relative paths to other directories: copy the two it needs beside the
# chart in a scratch directory (the checkout is never written to), and clean up.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/components" "$work/render"
cp -R "$manifests/operator" "$work/operator"
cp -R "$manifests/components/native-sidecar" "$work/components/native-sidecar"
cat >"$work/render/chart.yaml"
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources: [chart.yaml, ../operator]"
  echo "components: [../components/native-sidecar]"
  if [ -n "${DNS_SIDECAR_IMAGE:-}" ]; then
    name=${DNS_SIDECAR_IMAGE%:*}
    tag=${DNS_SIDECAR_IMAGE##*:}
    case $tag in
      */* | "$DNS_SIDECAR_IMAGE") name=$DNS_SIDECAR_IMAGE; tag="" ;;  # no tag given
    esac
    echo "images: [{name: dns-sidecar, newName: \"$name\"${tag:+, newTag: \"$tag\"}}]"
  fi
} >"$work/render/kustomization.yaml"
"${KUBECTL:-kubectl}" kustomize "$work/render"
