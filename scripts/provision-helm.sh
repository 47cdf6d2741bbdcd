#!/usr/bin/env bash
# Build helm from the Go module proxy into $STREAMREC_CACHE/helm-<version>/helm. Used by the chart
# tests (`helm lint`, `helm template`), which run offline. helm's go.mod has no replace lines, so a
# plain `go install` works. Prints the directory holding the binary on its last stdout line.
source "$(dirname "$0")/lib.sh"
need go "install Go 1.24+ (https://go.dev/dl)"

HELM_DIR="$STREAMREC_CACHE/helm-$HELM_VERSION"
if [[ -x "$HELM_DIR/helm" ]]; then
  log "helm: cached at $HELM_DIR"
  echo "$HELM_DIR"
  exit 0
fi
mkdir -p "$HELM_DIR"
build_helm() {
  # Install into a scratch dir and move, so an interrupted build never leaves a half binary.
  rm -rf "$HELM_DIR/.tmp"
  GOBIN="$HELM_DIR/.tmp" go install -trimpath -ldflags="-s -w" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  mv "$HELM_DIR/.tmp/helm" "$HELM_DIR/helm" && rmdir "$HELM_DIR/.tmp"
}
timed "helm $HELM_VERSION: build from the Go module proxy" build_helm
echo "$HELM_DIR"
