"""The embedded demo (`make run`): MovieLens-100K through `streamrec run`, then recommendations.

Starts `streamrec run` in a subprocess on a fresh data directory, streams the ratings >= 3 into
``POST /interactions`` in timestamp order (after the films themselves, with their genres as
categories, through ``POST /items``), waits for a snapshot that covers them, prints three
users' top-10 and one "Comedy only" list (a catalogue filter), each film's title and genres
asked of the API itself (``fields=title,categories``), sends one new event and measures how
long it takes to show up in that user's recommendations (the real-time fold-in), then a
dislike. Leaves the server running until Ctrl-C, with the README's tour to try against it;
``--once`` stops the server and ends with a summary of what it did.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from streamrec.adapters.datalock import Busy, DataDirLock, is_locked, port_free
from streamrec.data import movielens

ROOT = Path(__file__).resolve().parent.parent


def http(method: str, url: str, body: Any = None, timeout: float = 30.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read() or b"{}") | {"status": e.code}


def start_server(data_dir: Path, bind: str, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    log = (data_dir / "streamrec.log").open("a")
    cmd = [sys.executable, "-m", "streamrec.cli", "run", "--data-dir", str(data_dir),
           "--bind", bind, *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "listening on " in line:
            return proc, line.split("listening on ", 1)[1].strip()
    proc.kill()
    raise SystemExit(f"streamrec run did not start; see {data_dir / 'streamrec.log'}")


def wait_for_model(url: str, offset: int, timeout: float = 180.0) -> dict[str, Any]:
    """The served model once its snapshot covers the log up to ``offset``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = http("GET", f"{url}/model")
        if model.get("offsets", {}).get("0", -1) >= offset:
            return dict(model)
        time.sleep(0.5)
    raise SystemExit(f"no snapshot covering offset {offset} within {timeout:.0f} s")


#: What the demo asks of the catalogue for every film it lists (the API's ``fields=``).
FIELDS = "title,categories"


def top(url: str, user: str, n: int = 10) -> dict[str, Any]:
    return dict(http("GET", f"{url}/users/{user}/recommendations?n={n}&fields={FIELDS}"))


def title(it: dict[str, Any]) -> str:
    """A listed film's title as the API gave it (its id when it has no record)."""
    return str(it.get("title") or it["item"])


def show(user: str, recs: dict[str, Any]) -> None:
    print(f"\nuser {user} (model {recs.get('model_version')}, "
          f"fallback {recs.get('fallback')}, fresh events {recs.get('fresh_events')}):")
    for rank, it in enumerate(recs.get("items", []), start=1):
        print(f"  {rank:2d}. {title(it):55.55s} {it['score']:.3f}")


def wait_fresh(url: str, user: str, before: dict[str, Any], seconds: float = 10.0
               ) -> tuple[dict[str, Any], float | None]:
    """The user's list once it counts more fresh events than ``before``, and the ms it took."""
    t0, after = time.perf_counter(), before
    while time.perf_counter() - t0 < seconds:
        after = top(url, user)
        if after.get("fresh_events", 0) > before.get("fresh_events", 0):
            return after, (time.perf_counter() - t0) * 1000
        time.sleep(0.002)
    return after, None


def took(latency: float | None) -> str:
    return f"{latency:.1f} ms" if latency is not None else "not seen within 10 s"


def dislike(url: str, user: str) -> tuple[str, bool, float | None]:
    """Negative feedback (docs/feedback.md): the user dislikes the film at the top of their
    list; it leaves the list at once and the rest is refolded without it. Returns the film's
    title, whether it left the list, and after how many ms (None: not seen)."""
    before = top(url, user)
    film = before["items"][0]
    http("POST", f"{url}/interactions", {"user": user, "item": film["item"], "type": "dislike"})
    after, latency = wait_fresh(url, user, before)
    print(f"\ndislike: user {user} disliked {title(film)!r}")
    show(user, after)
    gone = film["item"] not in [it["item"] for it in after["items"]]
    changed = [it["item"] for it in after["items"]] != [it["item"] for it in before["items"]]
    print(f"\nthe film {'left' if gone else 'is still in'} the list "
          f"({'changed' if changed else 'unchanged'}) after {took(latency)}")
    return title(film), gone, latency


def publish_items(url: str, titles: dict[str, str], genres: dict[str, tuple[str, ...]],
                  batch: int = 1000) -> int:
    """Every film as an item record (genres as categories, the title) via ``POST /items``."""
    records = [{"item": i, "categories": list(genres.get(i, ())), "title": t}
               for i, t in titles.items()]
    for k in range(0, len(records), batch):
        reply = http("POST", f"{url}/items", records[k:k + batch])
        if reply.get("accepted") != len(records[k:k + batch]):
            raise SystemExit(f"items refused: {reply}")
    return len(records)


def show_filtered(url: str, user: str, category: str) -> None:
    """The user's top-10 among one category's films: still 10, each of that category."""
    recs = http("GET", f"{url}/users/{user}/recommendations?n=10&category={category}"
                       f"&fields={FIELDS}")
    print(f"\nuser {user}, {category} only (?category={category}):")
    for rank, it in enumerate(recs.get("items", []), start=1):
        print(f"  {rank:2d}. {title(it):55.55s} [{','.join(it.get('categories', []))}]")


def tour(url: str, user: str, rated: str, other: str) -> str:
    """A few requests to try against the running server (README.md has the whole tour)."""
    return (f"  curl '{url}/users/{user}/recommendations?n=5&fields=title'\n"
            f"  curl '{url}/users/{user}/because/{other}?fields=title'   # why a film is "
            f"recommended\n"
            f"  curl '{url}/items/{rated}/similar?n=5&fields=title'\n"
            f"  curl '{url}/popular?n=5&category=Film-Noir,Mystery&category_mode=all"
            f"&fields=title,categories'\n"
            f"  curl -X DELETE {url}/users/{user}   # forget the user (docs/feedback.md)\n"
            f"  open {url}/console/ in a browser")


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo like Ctrl-C: the server is stopped too


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(ROOT / ".cache" / "demo"),
                   help="fresh data directory (wiped first unless --keep-data)")
    p.add_argument("--keep-data", action="store_true", help="reuse what is in --data-dir")
    p.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT (port 0: any free)")
    p.add_argument("--batch", type=int, default=1000, help="events per POST")
    p.add_argument("--limit", type=int, default=0, help="send only the first N ratings")
    p.add_argument("--min-rating", type=float, default=3.0, help="keep ratings >= this")
    p.add_argument("--once", action="store_true", help="exit after the demo")
    args, extra = p.parse_known_args(argv)

    data_dir = Path(args.data_dir)
    # Nothing is touched before these checks: a second `make run` must never wipe the data of
    # a running one (adapters/datalock.py). The demo's own lock, beside the data directory,
    # covers the moment between the wipe and its server taking the data directory's lock.
    try:
        problem = is_locked(data_dir) or port_free(args.bind)
        demo_lock = None if problem else DataDirLock(
            data_dir.parent, f".{data_dir.name}.demo.lock").acquire()
    except Busy as e:
        problem = f"another demo is running on {data_dir} ({e})"
    except (OSError, ValueError) as e:
        problem = f"cannot use --data-dir {data_dir} / --bind {args.bind}: {e}"
    if problem:
        print(f"make run: {problem}", file=sys.stderr)
        return 2
    if not args.keep_data and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    ratings, titles = movielens.load()
    ratings = [r for r in ratings if r.rating >= args.min_rating]
    if args.limit:
        ratings = ratings[:args.limit]
    proc, url = start_server(data_dir, args.bind, extra)
    print(f"streamrec run is up at {url} (data in {data_dir}, log in streamrec.log)")
    t0 = time.perf_counter()
    try:
        genres = movielens.load_genres()
        films = publish_items(url, titles, genres)
        print(f"POST /items: {films} films with their genres")
        sent = 0
        with tqdm(total=len(ratings), unit="ev", desc="POST /interactions") as bar:
            for i in range(0, len(ratings), args.batch):
                chunk = [r.as_json() for r in ratings[i:i + args.batch]]
                reply = http("POST", f"{url}/interactions", chunk)
                if reply.get("accepted") != len(chunk):
                    raise SystemExit(f"ingest refused: {reply}")
                sent += len(chunk)
                bar.update(len(chunk))
        model = wait_for_model(url, sent)
        print(f"snapshot {model['version']}: {model['sizes']}")
        users = [u for u, _ in Counter(r.user for r in ratings).most_common(3)]
        for user in users:
            show(user, top(url, user))
        show_filtered(url, users[0], "Comedy")

        user, before = users[0], top(url, users[0])
        seen = {it["item"] for it in http("GET", f"{url}/users/{user}/items")
                .get("items", [])}
        shown = {it["item"] for it in before["items"]}
        # A movie the user has not rated and was not recommended: a liked similar film of
        # something far down the list makes the fold-in visibly move the list.
        far = top(url, user, 60)["items"][-1]["item"]
        item = next((it["item"] for it in http("GET", f"{url}/items/{far}/similar?n=20")["items"]
                     if it["item"] not in seen | shown), far)
        http("POST", f"{url}/interactions", {"user": user, "item": item, "rating": 5})
        after, latency = wait_fresh(url, user, before)
        print(f"\nnew event: user {user} rated {titles.get(item, item)!r} 5")
        show(user, after)
        changed = [it["item"] for it in after["items"]] != [it["item"] for it in before["items"]]
        print(f"\nevent-to-recommendation latency: {took(latency)} "
              f"(list {'changed' if changed else 'unchanged'})")
        disliked, gone, dislike_ms = dislike(url, user)
        if args.once:
            stop(proc)
            print(f"\ndone in {time.perf_counter() - t0:.1f} s (--once): {films:,} films and "
                  f"{sent:,} ratings sent, snapshot {model['version']} trained on them; user "
                  f"{user}'s list {'changed' if changed else 'did not change'} "
                  f"{took(latency)} after a new rating, and {disliked!r} "
                  f"{f'left it {took(dislike_ms)}' if gone else 'was still in it 10 s'} "
                  f"after a dislike.\n"
                  f"The server is stopped (data and log in {data_dir}); `make run` without "
                  f"--once keeps it running for the tour in README.md.")
        else:
            print(f"\nthe server keeps running at {url}; try (README.md has the whole tour):\n"
                  f"{tour(url, user, item, top(url, user)['items'][0]['item'])}\nCtrl-C stops it")
            signal.signal(signal.SIGTERM, _interrupt)
            while proc.poll() is None:
                time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        stop(proc)
        if demo_lock is not None:
            demo_lock.release()
    return 0


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the server and wait for it (60 s, then SIGKILL); nothing when it has ended."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
