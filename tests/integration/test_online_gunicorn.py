"""A replica's workers add up: `streamrec serve` with 2 gunicorn workers on a real Kafka.

Requests land on either worker (each keeps its own last lists and ids); every worker's fold-in
reads every event. `/stats` and `/metrics`, answered by whichever worker, equal the sums the
test computes, and the two workers' ids both appear: the multiprocess path of the online
evaluation (serving/online/stats.py), as Prometheus then sums replicas.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import requests
from confluent_kafka import Producer
from tests.support.serving import publish_snapshot, serve, wait_for

from streamrec.adapters.stores import LocalStore


def test_two_workers_tallies_add_up_in_stats_and_metrics(kafka: Any, tmp_path: Path) -> None:
    topic = kafka.create_topic("online-gunicorn")
    store = LocalStore(tmp_path / "store")
    version = publish_snapshot(store, tmp_path / "work", 1)
    with serve(tmp_path, store.root, bootstrap=kafka.bootstrap, topic=topic,
               workers=2) as server:
        served: dict[str, dict[str, Any]] = {}
        tokens: set[str] = set()
        for k in range(400):  # a fresh connection each: gunicorn's workers share the socket
            if len(served) >= 40 and len(tokens) == 2:
                break
            user = f"u{k}"  # u40 and up are cold: popular lists, tracked all the same
            body = requests.get(f"{server.base}/users/{user}/recommendations?n=5",
                                timeout=10).json()
            served[user] = body
            tokens.add(body["recommendation_id"].split("-")[0])
        assert len(tokens) == 2, "both workers answered"
        producer = Producer({"bootstrap.servers": kafka.bootstrap})
        for k, (user, body) in enumerate(served.items()):
            event: dict[str, Any] = {"user": user, "item": body["items"][k % 5]["item"]}
            if k % 2 == 0:
                event["recommendation_id"] = body["recommendation_id"]
            producer.produce(topic, json.dumps(event).encode(), key=user.encode())
        assert producer.flush(10) == 0
        del producer  # its threads go now, not after the broker
        want = {"lists": len(served), "events": len(served), "hits": len(served),
                "attributed": (len(served) + 1) // 2}
        rank_sum = sum(k % 5 + 1 for k in range(len(served)))

        def stats() -> dict[str, Any] | None:
            online = requests.get(f"{server.base}/stats", timeout=10).json()["online"]
            got = online["versions"].get(version, {})
            done = online["workers"] == 2 and all(got.get(k) == v for k, v in want.items())
            return online if done else None

        online = wait_for(stats, 30)
        assert online, requests.get(f"{server.base}/stats", timeout=10).json()
        assert online["tracked_users"] == len(served)
        assert online["versions"][version]["mean_rank"] == rank_sum / len(served)

        # /metrics may be answered by the other worker, which reads this one's file: up to a
        # publish interval (1 s) older than what /stats just saw. The totals must get there.
        def metrics() -> dict[str, float | None]:
            text = requests.get(f"{server.base}/metrics", timeout=10).text
            found: dict[str, float | None] = {}
            for name in want:
                line = rf'^streamrec_online_{name}_total{{model_version="{version}"}} (\S+)$'
                match = re.search(line, text, re.M)
                found[name] = float(match.group(1)) if match else None
            return found

        expected = {k: float(v) for k, v in want.items()}
        assert wait_for(lambda: metrics() == expected, 30), (metrics(), expected)


def test_ctr_counts_each_id_and_item_once_and_only_for_its_user_across_two_workers(
        kafka: Any, tmp_path: Path) -> None:
    topic = kafka.create_topic("online-ctr-once")
    store = LocalStore(tmp_path / "store")
    version = publish_snapshot(store, tmp_path / "work", 1)
    with serve(tmp_path, store.root, bootstrap=kafka.bootstrap, topic=topic,
               workers=2) as server:
        lists: dict[str, dict[str, Any]] = {}  # one list per worker token
        for k in range(200):
            body = requests.get(f"{server.base}/users/c{k}/recommendations?n=5",
                                timeout=10).json()
            lists.setdefault(body["recommendation_id"].split("-")[0], {**body, "user": f"c{k}"})
            if len(lists) == 2:
                break
        assert len(lists) == 2, "both workers answered"
        producer = Producer({"bootstrap.servers": kafka.bootstrap})
        for body in lists.values():
            rid, user = body["recommendation_id"], body["user"]
            first, second = body["items"][0]["item"], body["items"][1]["item"]
            events = [{"user": user, "item": first, "recommendation_id": rid}] * 3  # once
            events += [{"user": "intruder", "item": second, "recommendation_id": rid}]  # never
            events += [{"user": user, "item": second, "recommendation_id": rid}]  # once more
            for e in events:
                producer.produce(topic, json.dumps(e).encode(), key=e["user"].encode())
            # The same echo posted to the replica, whichever worker takes it: no new click.
            r = requests.post(f"{server.base}/interactions", timeout=10,
                              json={"user": user, "item": first, "recommendation_id": rid})
            assert r.status_code == 202, r.text
        assert producer.flush(10) == 0
        del producer

        def attributed() -> int | None:
            online = requests.get(f"{server.base}/stats", timeout=10).json()["online"]
            got = online["versions"].get(version, {})
            # Every event read by both workers (the fold-in's count), then the tally.
            return got.get("attributed") if online["workers"] == 2 else None

        assert wait_for(lambda: attributed() == 4, 30), attributed()
        time.sleep(2.5)  # two publish intervals: nothing more arrives late
        assert attributed() == 4
