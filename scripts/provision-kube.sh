#!/usr/bin/env bash
# Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, the node's kubelet
# and kube-proxy, and kwok from the Go module proxy into $STREAMREC_CACHE/kube-<version>/bin. Idempotent: a stamp file marks a
# finished build. Why a wrapper module: k8s.io/kubernetes pins its staging modules at v0.0.0, so
# `go install` fails; we replace each one with the matching v0.MINOR.PATCH release.
source "$(dirname "$0")/lib.sh"
need go "install Go 1.24+ (https://go.dev/dl)"

# "-node": the build includes kubelet and kube-proxy (a real node, docs/kubernetes.md).
KUBE_DIR="$STREAMREC_CACHE/kube-$KUBE_VERSION-node-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
BIN="$KUBE_DIR/bin"
STAMP="$KUBE_DIR/.done"
lock kube
cached kube "$STAMP" "$KUBE_DIR"
mkdir -p "$BIN" "$KUBE_DIR/src"

build_etcd() {
  local src="$KUBE_DIR/src/etcd"
  rm -rf "$src" && mkdir -p "$src" && cd "$src"
  go mod init local/etcdbin >/dev/null 2>&1
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null
  go mod tidy >/dev/null
  go build -trimpath -ldflags="-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
}

build_kube() {
  local src="$KUBE_DIR/src/kube" minor=${KUBE_VERSION#*.}
  minor=${minor%%.*}
  rm -rf "$src" && mkdir -p "$src" && cd "$src"
  go mod init local/k8sbin >/dev/null 2>&1
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@v$KUBE_VERSION"
  # Every staging module pinned at v0.0.0 gets the release that matches this Kubernetes version.
  local mods
  mods=$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u)
  local m
  for m in $mods; do
    go mod edit "-replace=$m=$m@v0.${KUBE_VERSION#1.}"
  done
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
      printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"
    done
    printf ')\n'
  } > tools.go
  go get "k8s.io/kubernetes@v$KUBE_VERSION" >/dev/null
  go mod tidy >/dev/null
  # Stamp the real version in, as the release build does: components compare versions.
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=v$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=2000-01-01T00:00:00Z"
  done
  # One `go build` for all six: the packages they share (client-go, apimachinery, api) compile once.
  go build -trimpath -ldflags="$ld" -o "$BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
}

build_kwok() {
  cd "$KUBE_DIR"  # not the kube build's source dir, which is removed below
  GOBIN="$BIN" go install -trimpath -ldflags="-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  # kwok needs its stage configs (what makes a Pod Running/Ready); they ship in the module.
  local mod
  mod=$(go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  mkdir -p "$KUBE_DIR/kwok-stages"
  local f
  for f in "$mod"/kustomize/stage/node/fast/*.yaml "$mod"/kustomize/stage/pod/fast/*.yaml; do
    [[ $(basename "$f") == kustomization.yaml ]] && continue
    install -m 0644 "$f" "$KUBE_DIR/kwok-stages/"
  done
}

timed "etcd v$ETCD_VERSION: build from the Go module proxy" build_etcd
timed "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy v$KUBE_VERSION: build" build_kube
timed "kwok v$KWOK_VERSION: build" build_kwok
rm -rf "$KUBE_DIR/src"
touch "$STAMP"
echo "$KUBE_DIR"
