#!/usr/bin/env bash
# The base image that services/Dockerfile names, python:3.11-slim, in the podman storage of
# scripts/provision-containers.sh. Pulled from Docker Hub when a registry is reachable. When it is
# not (these CI machines reach no container registry), a local stand-in under that same name is
# built from Debian packages: debootstrap minbase + python3 + venv + pip, imported with
# `podman import`. The Dockerfile stays the one users build; docs/container.md lists what differs
# between the stand-in and the real base. Idempotent; prints the image reference.
source "$(dirname "$0")/lib.sh"
eval "$(bash "$(dirname "$0")/provision-containers.sh" --env)"

BASE_REF="docker.io/library/python:3.11-slim"
SUITE="bookworm"  # python:3.11-slim is Debian bookworm too; bookworm's python3 is 3.11
STANDIN_VERSION=1  # bump when the stand-in's recipe changes
TARBALL="$STREAMREC_CACHE/base-image/python-3.11-slim-standin-$SUITE-v$STANDIN_VERSION.tar"
LABEL="io.streamrec.standin=debootstrap-$SUITE-v$STANDIN_VERSION"

lock base-image
if podman image exists "$BASE_REF"; then
  log "base: $BASE_REF present ($(podman image inspect -f '{{index .Labels "io.streamrec.standin"}}' \
    "$BASE_REF" | sed 's/^$/pulled from the registry/;s/^debootstrap/local stand-in: debootstrap/'))"
  echo "$BASE_REF"; exit 0
fi

if timeout 60 podman pull -q "$BASE_REF" >/dev/null 2>"$STREAMREC_CACHE/containers/pull.err"; then
  log "base: pulled $BASE_REF"
  echo "$BASE_REF"; exit 0
fi
log "base: $BASE_REF cannot be pulled ($(tail -n 1 "$STREAMREC_CACHE/containers/pull.err" | cut -c1-160))"
log "base: building a LOCAL STAND-IN named $BASE_REF from Debian $SUITE packages (docs/container.md)"

mirror() {  # the Debian mirror this machine's apt already uses
  local uri
  uri=$(grep -hoE '^(URIs:|deb) +[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
        2>/dev/null | grep -v security | awk '{print $2}' | head -n 1 || true)
  echo "${STREAMREC_DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

build_rootfs() {
  [[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
  root=$(mktemp -d "$STREAMREC_CACHE/base-image/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$root" "$(mirror)" >"$STREAMREC_CACHE/base-image/debootstrap.log" 2>&1 \
    || die "debootstrap failed: $(tail -n 5 "$STREAMREC_CACHE/base-image/debootstrap.log")"
  # What python:3.11-slim has and Debian's python3 lacks: `python`/`pip` commands and no
  # PEP 668 marker (the official image's interpreter is not Debian's, so pip may install).
  ln -sf python3 "$root/usr/bin/python"
  [[ -e $root/usr/bin/pip ]] || ln -sf pip3 "$root/usr/bin/pip"
  rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
  # Slim images ship no apt lists, caches or docs.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* \
         "$root"/usr/share/man/* "$root"/usr/share/info/*
  tar -C "$root" --numeric-owner -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$root"
}

mkdir -p "$(dirname "$TARBALL")"
if [[ ! -f $TARBALL ]]; then
  timed "base: debootstrap $SUITE minbase + python3" build_rootfs
fi
podman import -q --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' --change "LABEL $LABEL" "$TARBALL" "$BASE_REF" >/dev/null \
  || die "podman import of $TARBALL failed"
log "base: stand-in $BASE_REF imported ($(podman image inspect -f '{{.Size}}' "$BASE_REF") bytes)"
echo "$BASE_REF"
