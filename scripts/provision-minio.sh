#!/usr/bin/env bash
# Build the MinIO server from the Go module proxy into $STREAMREC_CACHE/minio-<version>/minio.
source "$(dirname "$0")/lib.sh"
need go "install Go 1.24+ (https://go.dev/dl)"

MINIO_DIR="$STREAMREC_CACHE/minio-$MINIO_VERSION"
lock minio
cached minio "$MINIO_DIR/minio" "$MINIO_DIR"
mkdir -p "$MINIO_DIR"
build_minio() {
  GOBIN="$MINIO_DIR/.tmp" go install -trimpath -ldflags="-s -w" "github.com/minio/minio@$MINIO_VERSION"
  mv "$MINIO_DIR/.tmp/minio" "$MINIO_DIR/minio" && rmdir "$MINIO_DIR/.tmp"
}
timed "minio $MINIO_VERSION: build from the Go module proxy" build_minio
echo "$MINIO_DIR"
