#!/usr/bin/env bash
# skaffold's custom build command (skaffold.yaml, profile `ci`): the project's own image builder,
# scripts/image.sh (podman, or Docker where a daemon answers), instead of skaffold's Docker one.
#
# skaffold sets, per its custom-builder contract (https://skaffold.dev/docs/builders/builder-types/custom/):
#   IMAGE       the full reference to produce, [REGISTRY/]streamrec:TAG (REGISTRY from --default-repo)
#   PUSH_IMAGE  true when the image must end up in REGISTRY (a remote cluster), false when it stays
#               local (kind/minikube load it themselves)
# The image is built as streamrec:TAG and, when pushed, sent to REGISTRY/streamrec:TAG (image.sh
# --push). Exits 2 naming the variable when IMAGE is missing or names an image this repo does
# not build.
set -euo pipefail
here=$(dirname "$0")

if [[ -z ${IMAGE:-} ]]; then
  echo "$0: IMAGE is not set; this is skaffold's custom build command (skaffold build -p ci)" >&2
  exit 2
fi
name=${IMAGE%:*} tag=${IMAGE##*:}
if [[ $name == "$IMAGE" || ${name##*/} != streamrec ]]; then
  echo "$0: IMAGE=$IMAGE: expected [REGISTRY/]streamrec:TAG" >&2
  exit 2
fi
registry=""
[[ $name == */* ]] && registry=${name%/*}

if [[ ${PUSH_IMAGE:-false} == true ]]; then
  if [[ -z $registry ]]; then
    echo "$0: IMAGE=$IMAGE has no registry to push to; give skaffold --default-repo HOST:PORT" >&2
    exit 2
  fi
  bash "$here/image.sh" --tag "$tag" --push "$registry" >/dev/null
elif [[ -n $registry ]]; then
  echo "$0: IMAGE=$IMAGE names a registry but PUSH_IMAGE is not true; drop --default-repo for a" \
       "local build, or push (build.local.push: true)" >&2
  exit 2
else
  bash "$here/image.sh" --tag "$tag" >/dev/null
fi
