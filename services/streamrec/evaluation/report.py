"""The report writer, the one part of the evaluation that does I/O: JSON, markdown and plots.

``markdown_table`` is pure (the docs and the CLI print the same table); ``write_report`` writes
``<name>.json``, ``<name>.md`` and two PNGs (recall@10 over the stream, recall@10 against the
retrain period) into a directory. matplotlib is imported only there, with the Agg backend.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["markdown_table", "write_report"]

log = logging.getLogger(__name__)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.2f}"


def markdown_table(report: Mapping[str, Any]) -> str:
    """One row per strategy: warm-user metrics (in %), coverage, cold users, costs."""
    result = report["result"]
    k = result["protocol"]["k"]
    lines = [
        f"| strategy | recall@{k} | nDCG@{k} | MRR@{k} | coverage | cold recall@{k} (n) "
        "| user new since fit | µs/recommend | µs/update | fits (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in result["strategies"]:
        fits = s["learner"].get("fits")
        fit_text = f"{fits} ({s['learner']['fit_seconds']:.1f})" if fits is not None else "–"
        lines.append(
            f"| {s['name']} | {_pct(s['warm']['recall'])} | {_pct(s['warm']['ndcg'])} "
            f"| {_pct(s['warm']['mrr'])} | {_pct(s['coverage'])} "
            f"| {_pct(s['cold']['recall'])} ({s['cold']['events']}) "
            f"| {_pct(s['diagnostics'].get('unknown_to_snapshot'))} "
            f"| {s['us_per_recommend']:.0f} | {s['us_per_update']:.0f} | {fit_text} |"
        )
    return "\n".join(lines) + "\n"


def _params(params: Mapping[str, Any]) -> str:
    shown = ("factors", "iterations", "regularization", "alpha", "learn_rate")
    return ", ".join(f"{k} {params[k]}" for k in shown if k in params)


def summary(report: Mapping[str, Any]) -> str:
    """A few lines on the data and the protocol, above the table."""
    r, d = report["result"], report["dataset"]
    p = r["protocol"]
    sampled = (
        f"a uniform random {100 * p['sample']:.0f}% sample (seed {p['seed']}) of"
        if p["sample"] < 1 else "all"
    )
    return (
        f"Data: {d['name']}, {r['events']} events, {r['users']} users, {r['items']} items. "
        f"Warm-up: the first {r['warmup_events']} events (learned only). Scored: {sampled} the "
        f"{r['positive_test_events']} test events with weight >= {p['positive']} "
        f"({r['scored_events']} scored), each before it is learned; metrics in % over warm "
        f"users, cold users (no earlier event) apart. ALS: {_params(report['als'])}. "
        f"ISGD: {_params(report['isgd'])}.\n"
    )


def _plot(report: Mapping[str, Any], directory: Path, name: str) -> list[str]:
    try:
        import matplotlib
    except ImportError:  # a dev extra: without it the report is JSON and markdown only
        log.warning("matplotlib is not installed (pip install 'streamrec[dev]'); no plots")
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = report["result"]["strategies"]
    k = report["result"]["protocol"]["k"]
    widest = max(s["params"].get("window", 0) for s in strategies)
    periods = sorted({s["params"]["retrain_every"] for s in strategies
                      if "retrain_every" in s["params"]})
    colors = {n: f"C{i + 2}" for i, n in enumerate(periods)}

    fig, ax = plt.subplots(figsize=(9, 5))
    for s in strategies:
        p = s["params"]
        if s["kind"] == "retrain+filter":
            continue  # a diagnostic: in the table, not on the plot
        if s["kind"] in ("retrain-only", "fold-in") and p["window"] != widest:
            continue
        if s["kind"] == "popularity" and p["window"] != widest:
            continue
        ys = [float("nan") if v is None else 100 * v for v in s["recall_over_time"]]
        xs = [(i + 0.5) / len(ys) for i in range(len(ys))]
        style: dict[str, Any] = {"color": "C0", "linestyle": "-."}
        if s["kind"] == "isgd":
            style = {"color": "C1", "linestyle": ":"}
        elif s["kind"] in ("retrain-only", "fold-in"):
            style = {"color": colors[p["retrain_every"]],
                     "linestyle": "-" if s["kind"] == "fold-in" else "--"}
        ax.plot(xs, ys, label=s["name"], **style)
    ax.set_xlabel("position in the test part of the stream")
    ax.set_ylabel(f"recall@{k} (%), warm users")
    ax.set_title(f"Prequential recall@{k} over the stream (W={widest})")
    ax.legend(fontsize=7)
    over_time = f"{name}_recall_over_time.png"
    fig.tight_layout()
    fig.savefig(directory / over_time, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 5))
    windows = sorted({s["params"]["window"] for s in strategies if "window" in s["params"]})
    for wi, w in enumerate(windows):
        for kind, line in (("retrain-only", "--"), ("fold-in", "-")):
            rows = sorted((s["params"]["retrain_every"], 100 * (s["warm"]["recall"] or 0.0))
                          for s in strategies
                          if s["kind"] == kind and s["params"]["window"] == w)
            if rows:
                ax.plot(*zip(*rows, strict=True), line, marker="o", color=f"C{wi + 2}",
                        label=f"{kind} W={w}")

    def wi_of(s: Mapping[str, Any]) -> int:
        return windows.index(s["params"]["window"]) * 3 if "window" in s["params"] else 0

    for s in strategies:
        if s["kind"] in ("popularity", "isgd"):
            ax.axhline(100 * (s["warm"]["recall"] or 0.0),
                       linestyle=":" if s["kind"] == "isgd" else (0, (1 + wi_of(s), 2)),
                       color="C1" if s["kind"] == "isgd" else "C0", label=s["name"])
    ax.set_xscale("log")
    ax.set_xlabel("retrain every N events")
    ax.set_ylabel(f"recall@{k} (%), warm users")
    ax.set_title(f"recall@{k} against retrain frequency")
    ax.legend(fontsize=7)
    vs_retrain = f"{name}_recall_vs_retrain.png"
    fig.tight_layout()
    fig.savefig(directory / vs_retrain, dpi=110)
    plt.close(fig)
    return [over_time, vs_retrain]


def write_report(report: dict[str, Any], directory: Path, name: str,
                 plots: bool = True) -> list[Path]:
    """Write ``<name>.json``, ``<name>.md`` and the plots; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    pngs = _plot(report, directory, name) if plots else []
    report = {**report, "plots": pngs}
    json_path, md_path = directory / f"{name}.json", directory / f"{name}.md"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(json_path)
    md = f"# Recommendation quality ({report['dataset']['name']})\n\n{summary(report)}\n"
    md += markdown_table(report) + "".join(f"\n![{p}]({p})\n" for p in pngs)
    md_path.write_text(md)
    return [json_path, md_path, *(directory / p for p in pngs)]
