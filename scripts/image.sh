#!/usr/bin/env bash
# `make image`: build services/Dockerfile into streamrec:<version> (the version in pyproject.toml).
#
#   bash scripts/image.sh [--push HOST:PORT] [--tag TAG]
#
# Builder: STREAMREC_IMAGE_BUILDER=docker|podman; by default Docker when a Docker daemon answers,
# else podman (daemonless; installed from Debian packages by scripts/provision-containers.sh).
# With podman, the base image python:3.11-slim is pulled, or built as a local stand-in where no
# registry is reachable (scripts/provision-base-image.sh, which says so). Both builders cache
# layers: a second build with no change takes seconds. --push sends the image to a registry
# (e.g. the local one of `make registry`; plain HTTP on 127.0.0.1). Prints the image reference
# (REGISTRY/streamrec:TAG when pushed); progress and timings go to stderr.
source "$(dirname "$0")/lib.sh"
REPO=$(cd "$(dirname "$0")/.." && pwd)

usage() { echo "usage: $0 [--push HOST:PORT] [--tag TAG]" >&2; exit 2; }
PUSH="" TAG=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --push) [[ $# -ge 2 && -n $2 ]] || usage; PUSH=$2; shift 2 ;;
    --tag) [[ $# -ge 2 && $2 =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || usage; TAG=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "$0: unknown argument '$1'" >&2; usage ;;
  esac
done
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -n 1)
[[ -n $VERSION ]] || die "no version in pyproject.toml"
IMAGE="streamrec:${TAG:-$VERSION}"

BUILDER=${STREAMREC_IMAGE_BUILDER:-}
if [[ -z $BUILDER ]]; then
  if command -v docker >/dev/null 2>&1 && docker version >/dev/null 2>&1 \
     && ! docker version 2>/dev/null | grep -qi podman; then
    BUILDER=docker
  else
    BUILDER=podman
  fi
fi

case $BUILDER in
  docker)
    build() { DOCKER_BUILDKIT=1 docker build -q -f services/Dockerfile -t "$IMAGE" . >/dev/null; }
    size() { docker image inspect -f '{{.Size}}' "$IMAGE"; }
    push() { docker tag "$IMAGE" "$1" && docker push -q "$1" >/dev/null; }
    tidy() { :; } ;;  # Docker's build cache is Docker's to manage (docker builder prune)
  podman)
    eval "$(bash "$REPO/scripts/provision-containers.sh" --env)"
    bash "$REPO/scripts/provision-base-image.sh" >/dev/null || die "no base image"
    # --network host and the CA bundle: pip inside the build reaches the package index only with
    # this machine's certificates (Debian's pip reads /etc/ssl/certs); harmless elsewhere.
    build() {
      podman build --layers --pull=never --network host -v /etc/ssl/certs:/etc/ssl/certs:ro \
        -f services/Dockerfile -t "$IMAGE" . >"$STREAMREC_CACHE/containers/build.log" 2>&1 \
        || die "podman build failed; last lines of $STREAMREC_CACHE/containers/build.log:
$(tail -n 30 "$STREAMREC_CACHE/containers/build.log")"
    }
    size() { podman image inspect -f '{{.Size}}' "$IMAGE"; }
    push() {
      local rc=0
      podman tag "$IMAGE" "$1" || return
      podman push -q --tls-verify="$([[ $1 == 127.* || $1 == localhost* ]] && echo false || echo true)" \
        "$1" >/dev/null || rc=$?
      podman untag "$IMAGE" "$1"  # pushed or not, the extra name is not kept locally
      return $rc
    }
    # Every dependency change leaves its old layers behind as untagged images. Those of the
    # last week stay (they are the layer cache); older ones go, so the cache cannot grow forever.
    tidy() { podman image prune -f --filter until=168h >/dev/null 2>&1 || true; } ;;
  *) echo "$0: STREAMREC_IMAGE_BUILDER must be docker or podman, got '$BUILDER'" >&2; exit 2 ;;
esac

cd "$REPO"
lock image
t0=$SECONDS
build
log "image: $IMAGE built with $BUILDER in $((SECONDS - t0))s, $(( $(size) / 1000000 )) MB"
tidy
if [[ -n $PUSH ]]; then
  t0=$SECONDS
  push "$PUSH/$IMAGE" || die "push to $PUSH failed (is the registry running? make registry)"
  log "image: pushed $PUSH/$IMAGE in $((SECONDS - t0))s"
  echo "$PUSH/$IMAGE"
else
  echo "$IMAGE"
fi
