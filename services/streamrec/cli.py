"""The one `streamrec` command. Each service registers a subcommand here.

Subcommands are imported lazily so that `streamrec --help` stays fast and a service's
heavy dependencies (implicit, kopf) load only when that service runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from streamrec import __version__
from streamrec.config import ConfigError

# name -> (module, help). Each module exposes `add_arguments(parser)` and `run(args) -> int`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "operator": ("streamrec.operator.cli", "Run the Kubernetes operator (kopf)."),
    "serve": ("streamrec.serving.cli", "Serve recommendations over HTTP (gunicorn)."),
    "trainer": ("streamrec.trainer.cli",
                "Consume the interactions topic, retrain ALS, publish snapshots."),
    "evaluate": ("streamrec.evaluation.cli",
                 "Prequential evaluation of recommendation quality on an event stream."),
    "run": ("streamrec.embedded",
            "Run trainer and server embedded: local event log, local snapshots, no Kafka."),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; ``parser.subcommands`` maps each name to its own parser."""
    parser = argparse.ArgumentParser(
        prog="streamrec",
        description="Real-time recommendations from a stream of implicit feedback.",
    )
    parser.add_argument("--version", action="version", version=f"streamrec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subcommands: dict[str, argparse.ArgumentParser] = {}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        p = subcommands[name] = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    parser.set_defaults(_subcommands=subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    subcommands: dict[str, argparse.ArgumentParser] = vars(args).pop("_subcommands")
    if unknown:
        # `streamrec run --bogus`: the subcommand's usage names the flag, not the top level's
        # (argparse leaves unknown flags to the top-level parser). error() exits 2.
        owner = subcommands.get(getattr(args, "command", None) or "", parser)
        owner.error(f"unrecognized arguments: {' '.join(unknown)}")
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        return run(args)
    except ConfigError as e:
        print(f"streamrec {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
