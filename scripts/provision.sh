#!/usr/bin/env bash
# Provision all the real infrastructure the tests use (Kafka, MinIO, the Kubernetes control
# plane with the real node's kubelet and kube-proxy, helm, skaffold, the Strimzi CRDs and skaffold's
# schemas, podman and a local container registry, containerd + CNI + the pause image, CoreDNS,
# Traefik (the node's ingress controller), metrics-server (the node's resource metrics API);
# the image itself is `make image`; and Debian's chromium + chromium-driver for the console's
# browser test). Idempotent: a warm cache makes this a few seconds. Prints a timing summary.
source "$(dirname "$0")/lib.sh"
here=$(dirname "$0")
t0=$SECONDS
for c in kafka minio kube helm skaffold schemas containers registry browser node coredns traefik \
         metrics-server; do
  s=$SECONDS
  bash "$here/provision-$c.sh" >/dev/null || die "$c could not be provisioned (see above)"
  printf '[provision] %-10s ready in %4ss\n' "$c" "$((SECONDS - s))" >&2
done
printf '[provision] all components ready in %ss (cache: %s)\n' "$((SECONDS - t0))" "$STREAMREC_CACHE" >&2
