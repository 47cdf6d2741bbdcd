#!/usr/bin/env bash
# `make registry`: run the local container registry (distribution) in the foreground on
# 127.0.0.1:${REGISTRY_PORT:-5000}, storage in $STREAMREC_CACHE/registry-data, until Ctrl-C.
# Then `make image PUSH=127.0.0.1:5000` pushes streamrec there; the real node and skaffold pull
# it as 127.0.0.1:5000/streamrec:<tag> (docs/container.md).
source "$(dirname "$0")/lib.sh"
PORT=${REGISTRY_PORT:-5000}
[[ $PORT =~ ^[0-9]+$ ]] && (( PORT > 0 && PORT < 65536 )) \
  || { echo "$0: REGISTRY_PORT must be a port number, got '$PORT'" >&2; exit 2; }
DIR=$(bash "$(dirname "$0")/provision-registry.sh")
DATA="$STREAMREC_CACHE/registry-data"
mkdir -p "$DATA"
CONFIG=$(mktemp)
trap 'rm -f "$CONFIG"' EXIT
cat > "$CONFIG" <<YAML
version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: "$DATA"}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$PORT
YAML
log "registry: http://127.0.0.1:$PORT (storage $DATA); Ctrl-C stops it"
"$DIR/bin/registry" serve "$CONFIG"
