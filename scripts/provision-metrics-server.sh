#!/usr/bin/env bash
# metrics-server (sigs.k8s.io/metrics-server), the resource metrics API (metrics.k8s.io) that
# HorizontalPodAutoscalers read CPU from, built from the Go module proxy into
# $STREAMREC_CACHE/metrics-server-<version>/metrics-server. The real test node
# (tests/infra/node.py) runs it as a host process and registers it with the apiserver's
# aggregation layer when a test asks for autoscaling. Its go.mod has no replace lines, so a plain
# `go install` works; it is its own module (client-go v0.33, not the node's v0.36), so it cannot
# share scripts/provision-kube.sh's one `go build`. Idempotent; prints the directory.
source "$(dirname "$0")/lib.sh"
need go "install Go 1.24+ (https://go.dev/dl)"

DIR="$STREAMREC_CACHE/metrics-server-$METRICS_SERVER_VERSION"
lock metrics-server
cached metrics-server "$DIR/metrics-server" "$DIR"
mkdir -p "$DIR"
build() {
  # Into a scratch dir, then moved: an interrupted build never leaves a half binary.
  rm -rf "$DIR/.tmp"
  GOBIN="$DIR/.tmp" go install -trimpath -ldflags="-s -w" \
    "sigs.k8s.io/metrics-server/cmd/metrics-server@v$METRICS_SERVER_VERSION"
  mv "$DIR/.tmp/metrics-server" "$DIR/metrics-server" && rmdir "$DIR/.tmp"
}
timed "metrics-server v$METRICS_SERVER_VERSION: build from the Go module proxy" build
echo "$DIR"
