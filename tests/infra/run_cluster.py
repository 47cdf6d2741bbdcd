"""`make cluster`: the tests' real node for humans, until Ctrl-C (or --seconds, default 2 h).

Starts a local registry, pushes the image (`scripts/image.sh --push`, cached layers), starts
the node (tests/infra/node.py) with Traefik as its ingress controller (tests/infra/ingress.py),
and prints the kubeconfig and the Ingress address to use; Ctrl-C tears everything down and
checks that the host is as it was. Kafka and MinIO are not started here (`make run` or the test
fixtures have them); point Services at them as tests/e2e/test_real_cluster.py does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import FrameType

from .containers import Registry, build_image
from .ingress import TraefikIngress
from .node import RealCluster, node_image
from .process import SESSION_ENV, InfraError, end_survivors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make cluster", description=__doc__)
    parser.add_argument("--seconds", type=float, default=7200,
                        help="tear down after this many seconds (default 7200)")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be > 0")
    os.environ[SESSION_ENV] = uuid.uuid4().hex
    work = Path(tempfile.mkdtemp(prefix="streamrec-cluster-"))
    stop = {"now": False}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    registry = Registry(work / "registry")
    cluster: RealCluster | None = None
    ingress: TraefikIngress | None = None
    code = 0
    try:
        registry.start()
        ref = node_image(registry, build_image("--push", registry.address))
        print(f"image: {ref} (pods name it streamrec:<tag>)", flush=True)
        cluster = RealCluster(work / "node", registry=registry.address)
        cluster.start()
        ingress = TraefikIngress(work / "traefik", cluster)
        ingress.start()
        print(f"ready in {cluster.timings['cluster_start_s']:.0f}s\n"
              f"  export KUBECONFIG={cluster.kubeconfig}\n"
              f"  kubectl: {cluster.bin / 'kubectl'}\n"
              f"  Ingress (class traefik): curl -H 'Host: <host>' {ingress.url}/...\n"
              f"Ctrl-C tears it down (or after {args.seconds:.0f}s).", flush=True)
        deadline = time.monotonic() + args.seconds
        while not stop["now"] and time.monotonic() < deadline:
            time.sleep(0.5)
    except InfraError as e:
        print(f"make cluster: {e}", file=sys.stderr)
        code = 1
    finally:
        if ingress is not None:
            ingress.stop()
        try:
            if cluster is not None:
                cluster.stop()
        except InfraError as e:
            print(f"make cluster: {e}", file=sys.stderr)
            code = 1
        registry.stop()
        left = end_survivors(os.environ[SESSION_ENV])
        if left:
            print(f"make cluster: processes outlived the cluster (ended): {left}", file=sys.stderr)
            code = 1
    if code == 0:
        shutil.rmtree(work, ignore_errors=True)  # the logs stay only when something failed
    else:
        print(f"make cluster: logs in {work}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
