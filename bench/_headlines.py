"""The key figures of each benchmark, with the same-run reference each one is compared against.

``make bench`` puts these rows at the top of its summary: one figure per line, the reference
measured in the same run on the same data (a bare implicit fit, a raw confluent-kafka loop, a
bare numpy argpartition...), their ratio and the target. A benchmark may write its own
``headline`` list into its JSON (``bench/soak.py`` does); otherwise the function registered here
for its name reads the figures out of its result. Pure: JSON in, rows out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = dict[str, Any]


def row(figure: str, value: Any, unit: str, reference: str | None = None,
        reference_value: Any = None, ratio: float | None = None,
        target: str | None = None, met: bool | None = None) -> Row:
    if ratio is None and isinstance(value, int | float) and isinstance(
            reference_value, int | float) and reference_value:
        ratio = round(value / reference_value, 3)
    return {"figure": figure, "value": value, "unit": unit, "reference": reference,
            "reference_value": reference_value, "ratio": ratio, "target": target, "met": met}


def _parse(r: dict[str, Any]) -> list[Row]:
    rows = {x["path"] + "|" + x["format"]: x["events_per_s"] for x in r["results"]}
    batch = rows.get("parse_batch, batches of 500|text")
    single = rows.get("parse_event, one at a time|text")
    target = r.get("target_text_events_per_s", 500_000)
    return [row("text events parsed per second (parse_batch, one core)", batch, "events/s",
                "parse_event one at a time", single, target=f">= {target:,}",
                met=batch is not None and batch >= target)]


def _core(r: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    if r.get("fit"):
        big = r["fit"][-1]
        out.append(row(f"ALS fit, {big['events']:,}-event window (1 thread)",
                       big["streamrec_fit_s"], "s", "bare implicit fit, same CSR",
                       big["bare_implicit_fit_s"], ratio=big.get("ratio")))
    if r.get("window"):
        big = r["window"][-1]
        out.append(row(f"window CSR build, {big['events']:,} events", big["build_s"], "s"))
    for f in r.get("foldin", []):
        out.append(row(f"fold-in of one user, {f['items_per_user']} items (p50)", f["p50_us"],
                       "µs"))
    topn = {t["path"]: t for t in r.get("topn", [])}
    batch = next((t for p, t in topn.items() if p.startswith("Model.recommend_batch")), None)
    bare = next((t for p, t in topn.items() if p.startswith("implicit recommend")), None)
    if batch and bare:
        out.append(row("batch top-10 with exclude-seen, per user", batch["per_user_us"], "µs",
                       "implicit's own batch recommend", bare["per_user_us"]))
    return out


def _trainer(r: dict[str, Any]) -> list[Row]:
    target_ingest = r.get("targets", {}).get("kafka_events_per_s", 200_000)
    target_retrain = r.get("targets", {}).get("retrain_vs_bare", 1.1)
    out: list[Row] = []
    raw = next((x for x in r.get("ingest", []) if x["path"].startswith("raw confluent")), None)
    ours = next((x for x in r.get("ingest", []) if "KafkaSource" in x["path"]), None)
    if ours and isinstance(ours["events_per_s"], int | float):
        out.append(row("trainer ingest from a real broker (parse + window)",
                       ours["events_per_s"], "events/s", "raw confluent-kafka consume loop",
                       raw["events_per_s"] if raw else None, ratio=ours.get("vs_raw"),
                       target=f">= {target_ingest:,}",
                       met=ours["events_per_s"] >= target_ingest))
    elif ours:
        out.append(row("trainer ingest from a real broker", ours["events_per_s"], ""))
    if r.get("retrain"):
        big = r["retrain"][-1]
        ratio = big.get("retrain_vs_bare")
        out.append(row(f"retrain (copy + fit + snapshot), {big['window']:,}-event window",
                       big.get("retrain_s"), "s", "bare implicit fit, same CSR",
                       big.get("bare_fit_s"), ratio=ratio, target=f"<= {target_retrain}x",
                       met=ratio is not None and ratio <= target_retrain))
    return out


def _locallog(r: dict[str, Any]) -> list[Row]:
    return [row("embedded log appends (batched fsync)", r["append_records_per_s"], "records/s"),
            row("embedded log append-to-visible latency (p50)", r["visible_latency_ms_p50"],
                "ms")]


def _serving(r: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    levels = {lv["concurrency"]: lv for lv in r.get("latency", [])}
    ref = r.get("numpy_reference", {})
    if 1 in levels:
        c1 = levels[1]
        out.append(row("GET recommendations p50 at concurrency 1 (HTTP, gunicorn)",
                       round(c1["p50_ms"], 3), "ms", "bare numpy score + argpartition p50",
                       round(ref["p50_ms"], 3) if ref.get("p50_ms") else None,
                       target="<= 1 ms", met=c1["p50_ms"] <= 1.0))
        out.append(row("GET recommendations p99 at concurrency 1", round(c1["p99_ms"], 3), "ms",
                       target="<= 5 ms", met=c1["p99_ms"] <= 5.0))
    top = levels.get(32)
    if top:
        out.append(row("throughput at concurrency 32", round(top["rps"]), "req/s",
                       "bare numpy scoring, per core", round(ref["per_core_rps"])
                       if ref.get("per_core_rps") else None,
                       target=">= 2,000", met=top["rps"] >= 2000))
    fresh = r.get("freshness")
    if fresh:
        out.append(row("freshness, produce() to the first GET reflecting it (p99)",
                       round(fresh["p99_ms"], 1), "ms", "p50", round(fresh["p50_ms"], 1),
                       target="< 1,000 ms", met=fresh["p99_ms"] < 1000))
    mem = r.get("memory_summary")
    if mem:
        pct = mem["extra_worker_pct_of_model"]
        out.append(row("memory of one extra gunicorn worker (PSS)",
                       round(mem["extra_worker_mb"], 1), "MB", "model bytes",
                       round(mem["model_mb"], 1),
                       target="< 10% of the model", met=pct < 10))
    return out


def _quality(r: dict[str, Any]) -> list[Row]:
    strategies = r.get("result", {}).get("strategies", [])

    def best(kind: str) -> Row | None:
        found = [s for s in strategies if s["kind"] == kind]
        return max(found, key=lambda s: s["warm"]["recall"]) if found else None

    fold = best("fold-in")
    same = [s for s in strategies if fold and s["params"] == fold["params"]]
    retrain = next((s for s in same if s["kind"] == "retrain-only"), None)
    if not fold or not retrain:
        return []
    return [row(f"recall@10, {fold['name']}", round(fold["warm"]["recall"], 4), "",
                retrain["name"], round(retrain["warm"]["recall"], 4))]


EXTRACTORS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "parse": _parse, "core": _core, "trainer": _trainer, "locallog": _locallog,
    "serving": _serving, "quality": _quality,
}


def headlines(name: str, result: dict[str, Any] | None) -> list[Row]:
    """The key rows of one benchmark's result; [] when it has none or its shape is unknown."""
    if not result:
        return []
    if isinstance(result.get("headline"), list):
        return [row(**{k: h.get(k) for k in ("figure", "value", "unit", "reference",
                                               "reference_value", "ratio", "target", "met")})
                for h in result["headline"]]
    extract = EXTRACTORS.get(name)
    if extract is None:
        return []
    try:
        return extract(result)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:  # an older result file
        return [row(f"(key figures not readable from this result: {type(e).__name__} {e})",
                    None, "")]
