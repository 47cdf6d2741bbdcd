"""``streamrec operator``: run the RecommenderService operator (kopf) in the foreground.

Always standalone (no peering): the operator Deployment runs one replica with the Recreate
strategy, so two operators never handle the same object. kopf and the handlers are imported
only when the command runs, keeping ``streamrec --help`` fast.
"""

from __future__ import annotations

import argparse
import sys

from streamrec.settings.flags import add_service_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NAMESPACE",
        help="watch RecommenderServices in this namespace (repeatable)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (the children's Role must then be bound in each)",
    )
    # --liveness-port, --log-format, --verbose: the settings table's "operator" rows.
    add_service_arguments(parser, "operator")


def run(args: argparse.Namespace) -> int:
    try:
        import kopf

        import streamrec.operator.handlers  # noqa: F401  (registers the handlers)
    except ValueError as exc:  # a bad STREAMREC_OPERATOR_* variable
        print(f"streamrec operator: {exc}", file=sys.stderr)
        return 2
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat[args.log_format.upper()])
    liveness = f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None
    settings = kopf.OperatorSettings()
    # With --namespace the served namespaces are exactly those named: there is nothing to
    # discover. Left on, kopf's scanning lists every namespace first, which the RBAC does not
    # grant (docs/operator.md#rbac); kopf retries that 403 nine times (~75 s) before it falls
    # back to these names, so every operator start handled nothing for over a minute.
    # Scanning off also stops kopf following CRD changes: a CRD installed after the operator
    # needs an operator restart (helm's crds/ and k8s/crd.yaml come first).
    settings.scanning.disabled = not args.all_namespaces
    kopf.run(
        settings=settings,
        standalone=True,
        namespaces=tuple(args.namespaces or ()),
        clusterwide=bool(args.all_namespaces),
        liveness_endpoint=liveness,
    )
    return 0
