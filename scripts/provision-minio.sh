#!/usr/bin/env bash
# Build the MinIO server from the Go module proxy into $STREAMREC_CACHE/minio-<version>/minio.
source "$(dirname "$0")/lib.sh"
need go "install Go 1.24+ (https://go.dev/dl)"

MINIO_DIR="$STREAMREC_CACHE/minio-$MINIO_VERSION"
lock minio
if [[ -x "$MINIO_DIR/minio" ]]; then
  log "minio: cached at $MINIO_DIR"
  echo "$MINIO_DIR"
  exit 0
fi
mkdir -p "$MINIO_DIR"
build_minio() {
  GOBIN="$MINIO_DIR/.tmp" go install -trimpath -ldflags="-s -w" "github.com/minio/minio@$MINIO_VERSION"
  mv "$MINIO_DIR/.tmp/minio" "$MINIO_DIR/minio" && rmdir "$MINIO_DIR/.tmp"
}
timed "minio $MINIO_VERSION: build from the Go module proxy" build_minio
echo "$MINIO_DIR"
