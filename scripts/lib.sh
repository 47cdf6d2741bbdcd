# Shared helpers for the provisioning scripts: cache location, timed steps, clear failures.
# Sourced, never run. Everything lands under $STREAMREC_CACHE (outside the clone, because CI
# clones afresh on the same machine), keyed by version so a version bump rebuilds.
set -euo pipefail

STREAMREC_CACHE="${STREAMREC_CACHE:-$HOME/.cache/streamrec}"
export STREAMREC_CACHE
mkdir -p "$STREAMREC_CACHE"

# Pinned versions. Bump here; the cache key follows.
KAFKA_VERSION="4.1.1"
SLF4J_VERSION="2.0.17"
KUBE_VERSION="1.36.3"
ETCD_VERSION="3.6.16"
KWOK_VERSION="0.8.0"
HELM_VERSION="3.19.0"
# skaffold (scripts/provision-skaffold.sh) and its schemas (scripts/provision-schemas.sh); the newest
# version the Go module proxy serves.
SKAFFOLD_VERSION="2.16.1"
# The container registry server (github.com/distribution/distribution, `registry`).
DISTRIBUTION_VERSION="3.1.2"
# Cluster DNS of the real test node (scripts/provision-coredns.sh).
COREDNS_VERSION="1.14.7"
# The ingress controller of the real test node (scripts/provision-traefik.sh).
TRAEFIK_VERSION="3.6.12"
# The resource metrics API of the real test node, for HPAs (scripts/provision-metrics-server.sh).
METRICS_SERVER_VERSION="0.8.0"
# The pause image of the real node's pod sandboxes, built locally (scripts/provision-node.sh).
PAUSE_VERSION="3.10-streamrec1"
# MinIO publishes RELEASE.* tags that the module proxy does not serve; pin the pseudo-version.
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"

log() { printf '[provision %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[provision] FAILED: %s\n' "$*" >&2; exit 1; }

# timed NAME CMD...: run a step and report how long it took.
timed() {
  local name=$1; shift
  local t0=$SECONDS
  log "$name ..."
  "$@" || die "$name (exit $?)"
  log "$name done in $((SECONDS - t0))s"
}

# lock NAME: one provisioning of NAME at a time. `make provision` and a test fixture (which
# provisions what is missing) can race; the second waits, then finds the cache warm.
lock() {
  need flock "install util-linux"
  exec 9>"$STREAMREC_CACHE/.$1.lock"
  if ! flock -n 9; then
    log "$1: another provisioning is running; waiting for it"
    flock -w 3600 9 || die "$1: timed out waiting for the other provisioning's lock"
  fi
}

# write_file PATH: stdin becomes PATH's content, atomically and only when it changes. The text goes
# to a temp file beside PATH, then rename(2) puts it in place, so a concurrent reader (the podman of
# another build reading storage.conf) sees the old file or the new one, never a truncated or
# half-written one; an unchanged file is not touched at all (same inode, same mtime).
write_file() {
  local path=$1 tmp
  tmp=$(mktemp "$path.XXXXXX.tmp") || die "cannot create a temp file beside $path"
  if ! cat >"$tmp"; then rm -f "$tmp"; die "cannot write $tmp"; fi
  if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"; return 0
  fi
  chmod 644 "$tmp" && mv -f "$tmp" "$path" || { rm -f "$tmp"; die "cannot replace $path"; }
}

need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed; $2"; }

# install_debian_packages PKG...: install those of PKG that are missing (as root, from the
# machine's Debian mirror); nothing when all are there.
install_debian_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  [[ $(id -u) -eq 0 ]] || die "missing Debian packages: ${missing[*]}; install them as root \
(apt-get install ${missing[*]}) or run as root"
  need apt-get "these are installed from Debian packages"
  log "installing ${missing[*]} from Debian packages"
  apt-get update -q >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    >/dev/null || die "apt-get install ${missing[*]} failed"
}

# cached NAME PATH DIR: if PATH (the built binary, or a stamp written last) exists, the component
# is in the cache: say so, print DIR (what every provision script prints) and end the script.
cached() {
  [[ -f $2 ]] || return 0
  log "$1: cached at $3"
  echo "$3"; exit 0
}

# module_copy MODULE VERSION DEST: `go mod download` MODULE@vVERSION from the Go module proxy and
# copy it, writable, to DEST, to `go build` inside it: for modules whose go.mod has `replace`
# lines, which `go install pkg@version` refuses (Traefik, skaffold).
module_copy() {
  local mod=$1 version=$2 dest=$3 dir
  dir=$(GOFLAGS=-mod=mod go mod download -json "$mod@v$version" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -n $dir && -f $dir/go.mod ]] || die "could not download $mod@v$version from the Go module proxy"
  rm -rf "$dest" && mkdir -p "$(dirname "$dest")" && cp -r "$dir" "$dest" && chmod -R u+w "$dest"
}

# Go builds must not pollute a module of the clone; keep them offline from any workspace.
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export GOWORK=off
export CGO_ENABLED=0
