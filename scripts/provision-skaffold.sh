#!/usr/bin/env bash
# skaffold, built from the Go module proxy into $STREAMREC_CACHE/skaffold-<version>/bin/skaffold.
# The helm + skaffold end-to-end tests (tests/e2e/test_helm_skaffold.py) run it against the real
# node. Idempotent; prints the directory holding bin/ on its last stdout line.
#
# Not `go install …/cmd/skaffold@v2.16.1`: skaffold's go.mod has replace lines (docker, viper,
# mergo, …), which `go install pkg@version` refuses. So: download the module, copy it somewhere
# writable (the module cache is read-only) and `go build ./cmd/skaffold` inside it, where the
# replace lines apply. v2.16.1 is the newest version the module proxy serves (v2.17 is not).
# Flags follow skaffold's own Makefile (release build: version stamped, static, timetzdata), minus
# cgo: with CGO_ENABLED=0 the binary is static without an external linker.
source "$(dirname "$0")/lib.sh"
need go "install Go 1.24+ (https://go.dev/dl)"

DIR="$STREAMREC_CACHE/skaffold-$SKAFFOLD_VERSION"
lock skaffold
cached skaffold "$DIR/bin/skaffold" "$DIR"

build() {
  local mod="github.com/GoogleContainerTools/skaffold/v2" src="$DIR/src"
  module_copy "$mod" "$SKAFFOLD_VERSION" "$src"
  mkdir -p "$DIR/bin"
  local vpkg="$mod/pkg/skaffold/version"
  (cd "$src" && go build -trimpath -tags "timetzdata osusergo netgo release" \
    -ldflags="-s -w -X $vpkg.version=v$SKAFFOLD_VERSION -X $vpkg.gitCommit=module-proxy" \
    -o "$DIR/bin/skaffold.tmp" ./cmd/skaffold) || die "go build ./cmd/skaffold failed (see above)"
  mv "$DIR/bin/skaffold.tmp" "$DIR/bin/skaffold"
  rm -rf "$src"
  "$DIR/bin/skaffold" version >/dev/null || die "the built skaffold does not run"
}
timed "skaffold v$SKAFFOLD_VERSION: build from the Go module proxy" build
echo "$DIR"
