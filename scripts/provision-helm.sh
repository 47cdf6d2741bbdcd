#!/usr/bin/env bash
# Build helm from the Go module proxy into $STREAMREC_CACHE/helm-<version>/helm. Used by the chart
# tests (`helm lint`, `helm template`), which run offline. helm's go.mod has no replace lines, so a
# plain `go install` works. Prints the directory holding the binary on its last stdout line.
source "$(dirname "$0")/lib.sh"
need go "install Go 1.24+ (https://go.dev/dl)"

HELM_DIR="$STREAMREC_CACHE/helm-$HELM_VERSION"
lock helm
cached helm "$HELM_DIR/helm" "$HELM_DIR"
mkdir -p "$HELM_DIR"
build_helm() {
  # helm's Makefile stamps the Kubernetes version it targets (client-go's, major+1); without it
  # `helm template` assumes v1.20 and refuses charts that declare a newer kubeVersion.
  local gomod minor
  gomod=$(go mod download -json "helm.sh/helm/v3@v$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f "$gomod" ]] || die "could not download helm.sh/helm/v3@v$HELM_VERSION"
  minor=$(awk '$1 == "k8s.io/client-go" {split($2, v, "."); print v[2]}' "$gomod")
  [[ -n "$minor" ]] || die "no k8s.io/client-go in helm's go.mod"
  local ldflags="-s -w"
  local pkg
  for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$minor"
  done
  # Install into a scratch dir and move, so an interrupted build never leaves a half binary.
  rm -rf "$HELM_DIR/.tmp"
  GOBIN="$HELM_DIR/.tmp" go install -trimpath -ldflags="$ldflags" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  mv "$HELM_DIR/.tmp/helm" "$HELM_DIR/helm" && rmdir "$HELM_DIR/.tmp"
}
timed "helm $HELM_VERSION: build from the Go module proxy" build_helm
echo "$HELM_DIR"
