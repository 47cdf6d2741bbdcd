#!/usr/bin/env bash
# The real Kubernetes node of the tests (tests/infra/node.py, `make cluster`): containerd, runc,
# the CNI plugins and iptables from Debian packages, and the pause image that every pod's sandbox
# runs, built locally because no registry is reachable: a static Go program in an image FROM
# scratch, saved as a docker-archive that the node imports into containerd at start. kubelet and
# kube-proxy come from scripts/provision-kube.sh, the cluster DNS from provision-coredns.sh.
# Idempotent; prints the directory holding pause.tar (and the image name in pause.ref).
source "$(dirname "$0")/lib.sh"
need go "install Go 1.24+ (https://go.dev/dl)"

# Nothing starts containerd here (no systemd): the node runs its own, with its own config.
PACKAGES=(containerd runc containernetworking-plugins iptables iproute2 conntrack)
PAUSE_REF="localhost/streamrec-pause:$PAUSE_VERSION"
DIR="$STREAMREC_CACHE/node-pause-$PAUSE_VERSION"

# The pause process: sleep until SIGTERM/SIGINT, reaping any zombie the sandbox inherits (it is
# PID 1 of the pod's PID namespace when the pod shares one).
PAUSE_GO='package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
'

build_pause() {
  local src="$DIR/src"
  rm -rf "$src" && mkdir -p "$src" && cd "$src"
  printf '%s' "$PAUSE_GO" > main.go
  go mod init local/pause >/dev/null 2>&1
  go build -trimpath -ldflags="-s -w" -o pause .
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' > Containerfile
  eval "$(bash "$here/provision-containers.sh" --env)"
  podman build --pull=never -q -f Containerfile -t "$PAUSE_REF" . >/dev/null
  podman save -q --format docker-archive -o "$DIR/pause.tar.tmp" "$PAUSE_REF"
  mv "$DIR/pause.tar.tmp" "$DIR/pause.tar"
  echo "$PAUSE_REF" > "$DIR/pause.ref"
  cd "$DIR" && rm -rf "$src"
}

lock node
install_debian_packages "${PACKAGES[@]}"
for b in containerd runc iptables ip; do need "$b" "install the Debian packages ${PACKAGES[*]}"; done
[[ -x /usr/lib/cni/bridge ]] || die "no CNI plugins in /usr/lib/cni (containernetworking-plugins)"
if [[ -f $DIR/pause.tar ]]; then
  log "node: pause image cached at $DIR"
else
  here=$(cd "$(dirname "$0")" && pwd)
  mkdir -p "$DIR"
  timed "pause image $PAUSE_REF: static Go binary FROM scratch" build_pause
fi
echo "$DIR"
