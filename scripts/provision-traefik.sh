#!/usr/bin/env bash
# Traefik v3, the ingress controller of the real test node (tests/infra/ingress.py), built from
# the Go module proxy into $STREAMREC_CACHE/traefik-<version>/bin/traefik. Idempotent; prints the
# directory.
#
# Not `go install github.com/traefik/traefik/v3/cmd/traefik@vX`: Traefik's go.mod has `replace`
# lines (forks of go-http-auth, gorilla/mux and minheap), and `go install pkg@version` refuses a
# main module with replace directives. So we `go mod download` the module and `go build` inside a
# writable copy of it, where its go.mod (replaces included) is the main module.
#
# The web UI: webui/embed.go embeds webui/static, which in the module zip holds only a README (the
# UI is built by npm in Traefik's release pipeline, not committed). The build succeeds and the
# dashboard serves an empty directory; we never enable the dashboard (`--api` is off), so nothing
# is missing for the ingress role. See docs/kubernetes.md.
source "$(dirname "$0")/lib.sh"
need go "install Go 1.25+ (https://go.dev/dl)"

DIR="$STREAMREC_CACHE/traefik-$TRAEFIK_VERSION"
lock traefik
cached traefik "$DIR/bin/traefik" "$DIR"

build() {
  local src="$DIR/src"
  module_copy github.com/traefik/traefik/v3 "$TRAEFIK_VERSION" "$src"
  [[ -d $src/webui/static ]] || die "traefik: the module has no webui/static (its //go:embed target)"
  mkdir -p "$DIR/bin" && cd "$src"
  go mod download
  go build -trimpath -ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
    -o "$DIR/bin/traefik.tmp" ./cmd/traefik
  mv "$DIR/bin/traefik.tmp" "$DIR/bin/traefik"
  rm -rf "$src"
}
timed "traefik v$TRAEFIK_VERSION: build from the Go module proxy" build
"$DIR/bin/traefik" version >&2 || die "traefik: the built binary does not run"
echo "$DIR"
