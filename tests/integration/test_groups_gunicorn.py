"""Serving groups as processes: two `streamrec serve` groups and one unsharded server over the
same snapshot, on a real Kafka topic of 4 partitions and a real MinIO bucket, under gunicorn.

Every user gets the same list from either group as from the unsharded server (a user of the
other group through one forwarding hop); an event posted to any group folds in on its owner
only; a group that is down gives its users a clear 503, and nobody else.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.infra.process import free_port
from tests.support.serving import version_name
from tests.support.trainerproc import ServingProc, wait_for

from streamrec.adapters.s3store import S3Store
from streamrec.adapters.snapshotfiles import write_snapshot
from streamrec.core.events import Event
from streamrec.core.groups import GroupLayout
from streamrec.core.scoring.model import ALSParams
from streamrec.core.scoring.training import fit
from streamrec.core.window.sliding import SlidingWindow

PARTITIONS = 4
USERS = [f"u{u}" for u in range(40)]


def _snapshot(directory: Path, version: str) -> Path:
    window = SlidingWindow(10_000)
    window.extend(Event(f"u{u}", f"i{i}", 1.0 + (u * 7 + i * 3) % 4)
                  for u in range(40) for i in range(30) if (u * 31 + i * 17) % 5 < 2)
    model = fit(window.build(), ALSParams(factors=8, iterations=8, num_threads=1))
    offsets = dict.fromkeys(range(PARTITIONS), 0)
    # Split by partition (format 9), as the trainer writes it for serving groups: each group
    # fetches and maps its own users; the unsharded server merges them all back.
    write_snapshot(directory / version, model, window.contents(), offsets, version,
                   user_partitions=PARTITIONS)
    return directory / version


def _items(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    return [x["item"] for x in r.json()["items"]]


def _kept(serving: ServingProc) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in serving.metrics_text().splitlines()
               if line.startswith('streamrec_foldin_events_total{result="kept"}'))


def test_two_groups_answer_like_one_server_fold_in_on_the_owner_and_fail_alone(
        kafka: Any, s3: Any, tmp_path: Path) -> None:
    topic = kafka.create_topic(f"groups-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)
    S3Store(s3.bucket, "", client=s3.client()).publish(
        _snapshot(tmp_path / "snap", version_name(1)), version_name(1))
    ports = [free_port(), free_port()]
    urls = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    layout = GroupLayout(2, 0, PARTITIONS)
    owned = {g: [u for u in USERS if layout.owner(u) == g] for g in (0, 1)}
    assert owned[0] and owned[1]
    plain = ServingProc(kafka.bootstrap, topic, s3, tmp_path / "plain")
    groups = [ServingProc(kafka.bootstrap, topic, s3, tmp_path / f"group{g}",
                          ["--serving-groups", "2", "--serving-group", str(g),
                           "--topic-partitions", str(PARTITIONS), "--group-urls", urls],
                          port=ports[g]) for g in (0, 1)]
    try:
        for s in (plain, *groups):
            s.wait_model(120)
        # The same list for every user, from either group, as from one unsharded server.
        for user in USERS:
            want = _items(plain.get(f"/users/{user}/recommendations?n=5"))
            for g, s in enumerate(groups):
                r = s.get(f"/users/{user}/recommendations?n=5")
                assert _items(r) == want, (user, g)
                assert r.headers["X-Streamrec-Group"] == str(layout.owner(user))
        batch = groups[0].get(f"/recommendations/batch?users={','.join(USERS)}&n=5").json()
        assert list(batch["results"]) == USERS
        for user in USERS[:8]:
            assert [x["item"] for x in batch["results"][user]["items"]] == \
                _items(plain.get(f"/users/{user}/recommendations?n=5"))

        # An event posted to group 0 for a user of group 1 folds in on group 1 only.
        theirs = owned[1][0]
        r = groups[0].http.post(groups[0].base + "/interactions",
                                json={"user": theirs, "item": "i29"}, timeout=30)
        assert r.status_code == 202, r.text
        wait_for(lambda: groups[1].get(f"/users/{theirs}/items").json()["fresh_events"] == 1,
                 30, "the owner to fold the event in")
        wait_for(lambda: plain.get(f"/users/{theirs}/items").json()["fresh_events"] == 1,
                 30, "the unsharded server to fold it in")
        # Asked through group 0, the answer is the owner's (one hop), with the event in it.
        via = groups[0].get(f"/users/{theirs}/items").json()
        assert via["fresh_events"] == 1 and via["fresh"][0]["item"] == "i29"
        assert groups[0].get("/model").json()["fresh_events"] == 0
        assert _kept(groups[0]) == 0 and _kept(groups[1]) == 1
        assert groups[1].get("/model").json()["group"]["partitions"] == [1, 3]
        # Each group maps only its own users; the unsharded server maps every user.
        for g, s in enumerate(groups):
            assert s.get("/model").json()["group"]["mapped_users"] == len(owned[g])
        assert plain.get("/model").json()["group"]["mapped_users"] == len(USERS)

        # Group 1 down: its users get a clear 503 from group 0; group 0's users do not notice.
        groups[1].close()
        r = groups[0].get(f"/users/{theirs}/recommendations")
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "owner_unavailable" and r.headers["Retry-After"] == "1"
        for user in owned[0][:5]:
            assert _items(groups[0].get(f"/users/{user}/recommendations?n=5")) == \
                _items(plain.get(f"/users/{user}/recommendations?n=5"))
        assert groups[0].get("/popular?n=3").status_code == 200
        assert groups[0].get("/items/i1/similar?n=3").status_code == 200
        unavailable = [line for line in groups[0].metrics_text().splitlines()
                       if line.startswith("streamrec_group_forwards_total{")
                       and 'group="1",result="unavailable"' in line]
        assert unavailable and float(unavailable[0].rsplit(" ", 1)[1]) >= 1
    finally:
        for s in (plain, *groups):
            s.close()
