#!/usr/bin/env bash
# A daemonless container toolchain for `make image` and the container tests: podman (and buildah,
# which it builds with) and runc from Debian packages, plus this project's own containers.conf and
# storage.conf under $STREAMREC_CACHE/containers (nothing in /etc is changed). Idempotent; prints
# the config directory. Callers use it with:  eval "$(bash scripts/provision-containers.sh --env)"
#
# Settings and why (docs/container.md):
#   runtime runc            crun fails here: "cgroups in hybrid mode not supported"
#   default_ulimits         the machine lacks CAP_SYS_RESOURCE; podman's defaults fail "error setting rlimit"
#   cgroupfs, file events   there is no systemd (nothing would receive journald events)
#   netns host              the build reaches the package index; tests reach 127.0.0.1 services
source "$(dirname "$0")/lib.sh"

PACKAGES=(podman buildah runc conmon containernetworking-plugins fuse-overlayfs uidmap
          debootstrap iptables)
CONF_DIR="$STREAMREC_CACHE/containers"
# /dev/shm is a tmpfs: podman's run state must not survive a reboot (it would think stale
# containers still run); the images live in the cache.
RUN_DIR="${STREAMREC_CONTAINERS_RUN:-/dev/shm/streamrec-containers}"

# Other builds and tests run podman with these files while this runs (`make test` runs two
# pytest sessions at once, each building the image): they are replaced atomically, and only when
# their text changes (write_file in lib.sh), so no reader ever sees one half-written.
write_config() {
  mkdir -p "$CONF_DIR/storage" "$RUN_DIR"
  write_file "$CONF_DIR/containers.conf" <<EOF
# Written by scripts/provision-containers.sh; see docs/container.md for why each line is here.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "host"
cgroupns = "host"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$RUN_DIR/events.log"
tmp_dir = "$RUN_DIR/tmp"
EOF
  write_file "$CONF_DIR/storage.conf" <<EOF
# Written by scripts/provision-containers.sh: images live in the streamrec cache.
[storage]
driver = "overlay"
graphroot = "$CONF_DIR/storage"
runroot = "$RUN_DIR/run"
EOF
  write_file "$CONF_DIR/registries.conf" <<EOF
# Written by scripts/provision-containers.sh. Short names resolve to Docker Hub, as with Docker.
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
EOF
}

env_lines() {
  printf 'export CONTAINERS_CONF=%q CONTAINERS_STORAGE_CONF=%q CONTAINERS_REGISTRIES_CONF=%q\n' \
    "$CONF_DIR/containers.conf" "$CONF_DIR/storage.conf" "$CONF_DIR/registries.conf"
}

lock containers
install_debian_packages "${PACKAGES[@]}"
write_config
eval "$(env_lines)"
podman info >/dev/null 2>"$CONF_DIR/podman-info.err" \
  || die "podman does not start with $CONF_DIR/containers.conf: $(tail -n 5 "$CONF_DIR/podman-info.err")"
if [[ ${1:-} == --env ]]; then env_lines; else echo "$CONF_DIR"; fi
