"""Demo producers, ported from the original service's demo: items, user interactions, replay.

    python demo/producers.py items   --bootstrap 127.0.0.1:9092 [--loop --rate 5]
    python demo/producers.py users   --bootstrap 127.0.0.1:9092 --users 50 --rate 20
    python demo/producers.py replay  --url http://127.0.0.1:8000 --speedup 1e6

``items`` publishes MovieLens items with titles (JSON ``{"item", "title"}``) to the ``items``
topic: Kafka (``--bootstrap``) or the embedded local log (``--data-dir``). ``users`` creates
users and repeatedly publishes ``user:item`` for items seen on the ``items`` topic, at a rate.
``replay`` sends MovieLens ratings as JSON ``{user, item, rating, timestamp}`` in timestamp
order, sped up. ``users`` and ``replay`` write to the interactions topic on Kafka, or to a
running ``streamrec run`` through ``POST /interactions`` (``--url``). With ``--url``, the
bearer token that guards the writes (the operator's ``status.ingestTokenSecret``) is read from
``STREAMREC_INGEST_TOKEN``, as serving reads it; a token never goes on the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any, Protocol

from tqdm import tqdm

from streamrec.adapters.source import EventSource
from streamrec.config import Config
from streamrec.data import movielens


class Out(Protocol):
    def send(self, events: list[dict[str, Any]], text: bool = False) -> None: ...
    def close(self) -> None: ...


class KafkaOut:
    def __init__(self, bootstrap: str, topic: str) -> None:
        from streamrec.adapters.kafka import KafkaSink
        self.sink, self.topic = KafkaSink(Config(bootstrap_servers=bootstrap).kafka), topic

    def send(self, events: list[dict[str, Any]], text: bool = False) -> None:
        for e in events:
            value = f"{e['user']}:{e['item']}" if text else json.dumps(e)
            self.sink.produce(self.topic, value.encode(), key=str(e.get("user", "")).encode())

    def close(self) -> None:
        self.sink.close()


class HttpOut:
    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url.rstrip("/") + "/interactions"
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def send(self, events: list[dict[str, Any]], text: bool = False) -> None:
        req = urllib.request.Request(self.url, data=json.dumps(events).encode(), method="POST",
                                     headers=self.headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    def close(self) -> None:
        pass


def _out(args: argparse.Namespace, topic: str) -> Out:
    if args.url:
        return HttpOut(args.url, os.environ.get("STREAMREC_INGEST_TOKEN"))
    return KafkaOut(args.bootstrap, topic)


def _items_source(args: argparse.Namespace) -> EventSource:
    if args.bootstrap:
        from streamrec.adapters.kafka import KafkaSource, ensure_topics
        config = Config(bootstrap_servers=args.bootstrap)
        ensure_topics(config.kafka, [args.items_topic])
        return KafkaSource(config.kafka, args.items_topic)
    from streamrec.adapters.locallog import LocalLogSource
    return LocalLogSource(f"{args.data_dir}/log", args.items_topic)


def _paced(n: int, rate: float) -> Iterator[int]:
    """0..n-1 (forever if n == 0) at ``rate`` per second (0: as fast as possible)."""
    start, i = time.monotonic(), 0
    while n == 0 or i < n:
        if rate > 0:
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
        yield i
        i += 1


def cmd_items(args: argparse.Namespace) -> int:
    _, titles = movielens.load()
    rows = [{"item": k, "title": v} for k, v in titles.items()]
    if args.bootstrap:
        from streamrec.adapters.kafka import ensure_topics
        ensure_topics(Config(bootstrap_servers=args.bootstrap).kafka, [args.items_topic])
        from streamrec.adapters.kafka import KafkaSink
        sink: Any = KafkaSink(Config(bootstrap_servers=args.bootstrap).kafka)
    else:
        from streamrec.adapters.locallog import LocalLogSink
        sink = LocalLogSink(f"{args.data_dir}/log")
    total = len(rows) if not args.loop else 0
    with tqdm(total=total or None, unit="item", desc=f"items -> {args.items_topic}") as bar:
        for i in _paced(total, args.rate):
            row = rows[i % len(rows)]
            sink.produce(args.items_topic, json.dumps(row).encode(), key=row["item"].encode())
            bar.update(1)
    sink.close()
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    source = _items_source(args)
    source.seek({})
    items: list[str] = []
    deadline = time.monotonic() + args.wait
    while not items and time.monotonic() < deadline:
        for m in source.poll(10_000, 0.5):
            try:
                items.append(str(json.loads(m.value or b"{}")["item"]))
            except (ValueError, KeyError, TypeError):
                continue
    if not items:
        print(f"no items on topic {args.items_topic!r} within {args.wait} s", file=sys.stderr)
        return 1
    rng = random.Random(args.seed)
    users = [f"user-{i}" for i in range(args.users)]
    out = _out(args, args.topic)
    with tqdm(total=args.count or None, unit="ev", desc="users") as bar:
        for _ in _paced(args.count, args.rate):
            for m in source.poll(1000, 0.0):  # keep learning items while they arrive
                try:
                    items.append(str(json.loads(m.value or b"{}")["item"]))
                except (ValueError, KeyError, TypeError):
                    continue
            out.send([{"user": rng.choice(users), "item": rng.choice(items)}], text=True)
            bar.update(1)
    out.close()
    source.close()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    ratings, _ = movielens.load()
    ratings = [r for r in ratings if r.rating >= args.min_rating]
    if args.limit:
        ratings = ratings[:args.limit]
    out = _out(args, args.topic)
    t0, wall0 = ratings[0].timestamp if ratings else 0.0, time.monotonic()
    batch: list[dict[str, Any]] = []
    with tqdm(total=len(ratings), unit="ev", desc="replay") as bar:
        for r in ratings:
            if args.speedup > 0:
                time.sleep(max(0.0, wall0 + (r.timestamp - t0) / args.speedup - time.monotonic()))
            batch.append(r.as_json())
            if len(batch) >= args.batch or args.speedup > 0:
                out.send(batch)
                bar.update(len(batch))
                batch = []
        if batch:
            out.send(batch)
            bar.update(len(batch))
    out.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, helptext in (("items", "publish MovieLens items with titles"),
                           ("users", "publish user:item interactions for seen items"),
                           ("replay", "replay MovieLens ratings as JSON events")):
        s = sub.add_parser(name, help=helptext, description=helptext)
        where = s.add_mutually_exclusive_group(required=True)
        where.add_argument("--bootstrap", help="Kafka bootstrap servers")
        if name == "items":
            where.add_argument("--data-dir", help="embedded data dir (local log)")
        else:
            where.add_argument("--url", help="a running 'streamrec run', e.g. http://127.0.0.1:8000")
            s.add_argument("--topic", default="interactions", help="interactions topic (Kafka)")
        s.add_argument("--items-topic", default="items", help="the items topic")
        s.set_defaults(fn={"items": cmd_items, "users": cmd_users, "replay": cmd_replay}[name])
    items, users, replay = (sub.choices[n] for n in ("items", "users", "replay"))
    items.add_argument("--loop", action="store_true", help="publish continuously")
    items.add_argument("--rate", type=float, default=0.0, help="items per second (0: max)")
    users.add_argument("--data-dir", help="with --url: read items from this embedded data dir")
    users.add_argument("--users", type=int, default=100, help="number of users to create")
    users.add_argument("--rate", type=float, default=10.0, help="events per second (0: max)")
    users.add_argument("--count", type=int, default=0, help="stop after N events (0: never)")
    users.add_argument("--seed", type=int, default=0)
    users.add_argument("--wait", type=float, default=30.0, help="seconds to wait for items")
    replay.add_argument("--speedup", type=float, default=0.0,
                        help="time compression (0: as fast as possible)")
    replay.add_argument("--batch", type=int, default=1000, help="events per send when unpaced")
    replay.add_argument("--limit", type=int, default=0, help="only the first N ratings")
    replay.add_argument("--min-rating", type=float, default=0.0, help="keep ratings >= this")
    args = p.parse_args(argv)
    if args.cmd == "users" and args.url and not args.data_dir:
        p.error("users --url needs --data-dir to read the items topic from the local log")
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
