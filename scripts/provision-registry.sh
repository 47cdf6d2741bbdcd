#!/usr/bin/env bash
# The container registry server `distribution` (the `registry` binary behind Docker Hub's
# registry:2 image), built from the Go module proxy into $STREAMREC_CACHE/registry-<version>.
# No registry is reachable from CI, so tests and `make registry` run this one on 127.0.0.1:
# `make image` pushes there, and the real node and skaffold pull from it like any registry.
# Idempotent; prints the directory holding bin/registry.
source "$(dirname "$0")/lib.sh"
need go "install Go 1.24+ (https://go.dev/dl)"

DIR="$STREAMREC_CACHE/registry-$DISTRIBUTION_VERSION"
lock registry
cached registry "$DIR/bin/registry" "$DIR"
mkdir -p "$DIR/bin"
build() {
  cd "$DIR"  # outside any module of the clone
  GOBIN="$DIR/bin.tmp" go install -trimpath -ldflags="-s -w" \
    "github.com/distribution/distribution/v3/cmd/registry@v$DISTRIBUTION_VERSION"
  mv "$DIR/bin.tmp/registry" "$DIR/bin/registry" && rmdir "$DIR/bin.tmp"
}
timed "distribution (registry) v$DISTRIBUTION_VERSION: build from the Go module proxy" build
echo "$DIR"
