"""Run every benchmark in bench/ with a time bound and collect their results (``make bench``).

A benchmark is any ``bench/*.py`` whose name does not start with ``_``; each writes its own
``bench/results/<name>.json`` (and may write ``<name>.md``) and prints a table. This runner
runs them one after another, each under a timeout (the whole run under a budget), then writes
``bench/results/<date>.json`` (every benchmark's status, time and result), the summary
``bench/results/<date>.md``, and ``docs/benchmarks.md`` generated from it.

Benchmarks come in two suites, each with a documented budget (:data:`BUDGETS`: the seconds
each benchmark may take on the 2-core machine kind, its timeout; a suite's budget is their
sum): ``speed`` (``make bench``, every benchmark but the quality replays, 16 minutes)
and ``quality`` (``make bench-quality``: the MovieLens replays of ``quality.py`` and
``api_quality.py``, minutes each). The benchmarks of the other suite are collected from
their last results on disk, so docs/benchmarks.md always shows every benchmark.

    python bench/_runner.py [--suite speed|quality|all] [--quick] [--only quality,parse]
    python bench/_runner.py --collect     # run nothing: summarise the results already there

``--quick`` is passed to the benchmarks whose ``--help`` offers it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _headlines import headlines  # noqa: E402

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
DOCS = BENCH.parent / "docs" / "benchmarks.md"
TAIL = 4000

#: Seconds each benchmark may take on the 2-core machine kind (its timeout in the runner):
#: about 1.3x the slowest of two runs on the shared box at load average 5-11 (2026-12-04:
#: catalog 49, core 58, erasure 38, eventids 22, fields 38, locallog 13, online 26, parse 22,
#: scoring 50, serving 114, soak 46 s; trainer past 150 s at best of 3), 2-3x a quiet box.
BUDGETS: dict[str, float] = {
    "catalog": 60, "core": 75, "erasure": 55, "eventids": 50, "fields": 55, "locallog": 25,
    "online": 40, "parse": 50, "placements": 150, "scoring": 70, "serving": 180, "soak": 70,
    "trainer": 230,
    "ann": 240, "quality": 480, "api_quality": 720, "engines": 600, "groups": 180,
    "scale": 360,
}
#: A benchmark not in :data:`BUDGETS` (a new one) gets this until it is given its own.
DEFAULT_BUDGET = 60.0
#: The long runs go apart (``make bench-quality``): the quality replays, the training
#: engines' 1M-event fits (Spark's alone takes minutes) and item search at 1M items with its
#: prequential replay (ann, moved here when bench/placements.py joined the speed suite, whose
#: budget stays under 20 minutes), the serving groups' five servers (groups) and the 10M-user
#: snapshot per group (scale: ~15 GB on disk, ~14 GB of memory at its peak); the rest is
#: ``make bench``.
QUALITY = ("quality", "api_quality", "engines", "ann", "groups", "scale")
SUITES = ("speed", "quality", "all")


def in_suite(name: str, suite: str) -> bool:
    """Whether benchmark ``name`` runs in ``suite`` (``speed``, ``quality`` or ``all``)."""
    return suite == "all" or (name in QUALITY) == (suite == "quality")


#: A budget is for a quiet machine of the kind; on a shared one each process gets about
#: ``cpus / load`` of a core, so each budget is stretched by the 1-minute load average per CPU
#: when its benchmark starts (at least 1, at most this).
MAX_STRETCH = 2.5


def stretch(load1: float | None = None, cpus: int | None = None) -> float:
    """The factor a budget is stretched by: ``load1 / cpus`` within [1, MAX_STRETCH]."""
    load1 = os.getloadavg()[0] if load1 is None else load1
    cpus = cpus or os.cpu_count() or 1
    return min(MAX_STRETCH, max(1.0, load1 / cpus))


def budget(name: str) -> float:
    """Seconds benchmark ``name`` may take (:data:`BUDGETS`, else :data:`DEFAULT_BUDGET`)."""
    return BUDGETS.get(name, DEFAULT_BUDGET)


def suite_budget(names: Sequence[str]) -> float:
    """The whole run's budget: the sum of its benchmarks' budgets."""
    return float(sum(budget(n) for n in names))


def discover(only: Sequence[str] | None = None) -> list[Path]:
    found = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))
    return [p for p in found if not only or p.stem in only]


def offers_quick(script: Path) -> bool:
    try:
        out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                             text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return "--quick" in out.stdout


def run_one(script: Path, timeout: float, quick: bool,
            echo: Callable[[str], object] = print) -> dict[str, Any]:
    """Run one benchmark under ``timeout``, echoing its output live, line by line."""
    cmd = [sys.executable, str(script)]
    if quick and offers_quick(script):
        cmd.append("--quick")
    started_wall, started = time.time(), time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=BENCH.parent)
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            echo(f"  {script.stem} | {line.rstrip()}")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
        status = "ok" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group we started: the bench and its children
        proc.wait()
        status = "timeout"
    reader.join(10)  # a child that kept the pipe open must not hold the run
    output = "".join(lines)
    seconds = time.perf_counter() - started
    result_path = RESULTS / f"{script.stem}.json"
    result = None
    # Only a result written by this run counts; an old file would pass a failure off as a pass.
    if result_path.exists() and result_path.stat().st_mtime >= started_wall - 1:
        try:
            result = json.loads(result_path.read_text())
        except json.JSONDecodeError:
            status = "failed" if status == "ok" else status
    return {"name": script.stem, "command": " ".join(Path(c).name for c in cmd),
            "status": status, "returncode": proc.returncode, "seconds": round(seconds, 1),
            "fresh_result": result is not None, "result": result,
            "output_tail": output[-TAIL:]}


def collect_one(script: Path) -> dict[str, Any]:
    """A benchmark's last result as it is on disk (``--collect``)."""
    path = RESULTS / f"{script.stem}.json"
    result = None
    if path.exists():
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError:
            result = None
    # When it was measured, as the benchmark wrote it; a file's mtime is a clone's checkout time.
    when = None if result is None else result.get("measured_at") or time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(path.stat().st_mtime))
    return {"name": script.stem, "command": script.name,
            "status": f"collected ({when})" if when else "no result",
            "returncode": None, "seconds": (result or {}).get("seconds", "–"),
            "fresh_result": result is not None, "result": result, "output_tail": ""}


_ENVIRONMENT = {"benchmark", "python", "platform", "machine", "cpu_count", "cpus", "measured_at"}


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else (
        f"{value:.3g}")


def _flatten(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose cells hold lists of rows (``ann``'s requests per catalogue size) become one
    row per inner row, the outer row's other cells repeated, so a table never shows a repr."""
    out: list[dict[str, Any]] = []
    for row in rows:
        nested = [k for k, v in row.items()
                  if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
        if not nested:
            out.append(row)
            continue
        outer = {k: v for k, v in row.items() if k not in nested}
        for key in nested:
            out += [outer | inner for inner in _flatten(row[key])]
    return out


def json_markdown(result: dict[str, Any]) -> str:
    """A benchmark's JSON as markdown: scalars on one line, each list of rows as a table."""
    scalars = [f"{k} {_fmt(v)}" for k, v in result.items()
               if k not in _ENVIRONMENT and not isinstance(v, dict | list)]
    out = ["; ".join(scalars) + "\n\n" if scalars else ""]
    for key, value in result.items():
        if isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values()):
            out.append(f"{key}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) + "\n\n")
        elif isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            value = _flatten(value)
            cols = list(dict.fromkeys(c for r in value for c in r))
            out.append(f"**{key}**\n\n| " + " | ".join(cols) + " |\n|"
                       + "---|" * len(cols) + "\n")
            out += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |\n" for r in value]
            out.append("\n")
    return "".join(out)


def _section(bench: dict[str, Any], link_prefix: str) -> str:
    took = f" in {bench['seconds']} s" if isinstance(bench["seconds"], int | float) else ""
    head = f"## {bench['name']}\n\n`{bench['command']}`: **{bench['status']}**{took}\n\n"
    md = RESULTS / f"{bench['name']}.md"
    if bench["fresh_result"] and md.exists():
        body = md.read_text()
        body = re.sub(r"^# .*\n", "", body)  # the summary has its own headings
        body = re.sub(r"\]\(([^/)]+\.png)\)", rf"]({link_prefix}\1)", body)
        return head + body.strip() + "\n\n"
    if bench["result"] is not None:
        return head + json_markdown(bench["result"])
    return head + "```\n" + bench["output_tail"].strip()[-2000:] + "\n```\n\n"


def key_figures(report: dict[str, Any]) -> str:
    """Each benchmark's headline figures with their same-run reference and ratio."""
    rows = [(b["name"], h) for b in report["benches"] for h in headlines(b["name"], b["result"])]
    if not rows:
        return ""
    out = ["## Key figures\n\nEach figure with the reference measured in the same run on the "
           "same data, their ratio (figure / reference) and the target.\n\n",
           "| benchmark | figure | value | reference | ratio | target | met |\n"
           "|---|---|---:|---|---:|---|---|\n"]
    for name, h in rows:
        value = f"{_fmt(h['value'])} {h['unit']}".strip() if h["value"] is not None else ""
        ref = (f"{h['reference']}: {_fmt(h['reference_value'])} {h['unit']}".strip()
               if h["reference"] else "")
        ratio = f"{h['ratio']:.2f}" if isinstance(h["ratio"], int | float) else ""
        met = {True: "yes", False: "**no**", None: ""}[h["met"]]
        out.append(f"| {name} | {h['figure']} | {value} | {ref} | {ratio} | "
                   f"{h['target'] or ''} | {met} |\n")
    return "".join(out) + "\n"


def summary(report: dict[str, Any], link_prefix: str) -> str:
    lines = [f"Measured {report['measured_at']} on {report['platform']}, "
             f"{report['cpu_count']} CPUs, Python {report['python']}"
             f"{' (quick mode)' if report['quick'] else ''}"
             f"{'; results collected from earlier runs' if report.get('collected') else ''}"
             + (f"; suite {report['suite']} (budget {report['budget']:.0f} s), load average "
                f"{', '.join(f'{x:.2f}' for x in report['load_average'])} at the end"
                if "suite" in report else "") + ".\n\n",
             "| benchmark | suite | status | seconds | budget (s) | stretched by load |\n"
             "|---|---|---|---:|---:|---:|\n"]
    lines += [f"| {b['name']} | {'quality' if b['name'] in QUALITY else 'speed'} | "
              f"{b['status']} | {b['seconds']} | {budget(b['name']):.0f} | "
              f"{b.get('stretch', '')} |\n"
              for b in report["benches"]]
    lines.append("\n")
    lines.append(key_figures(report))
    lines += [_section(b, link_prefix) for b in report["benches"]]
    return "".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=SUITES, default="speed",
                        help="speed (make bench), quality (make bench-quality) or all")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--timeout", type=float,
                        default=float(os.environ["BENCH_TIMEOUT"]) if os.environ.get(
                            "BENCH_TIMEOUT") else None,
                        help="seconds per benchmark, instead of each one's budget "
                             "(env BENCH_TIMEOUT)")
    parser.add_argument("--budget", type=float,
                        default=float(os.environ["BENCH_BUDGET"]) if os.environ.get(
                            "BENCH_BUDGET") else None,
                        help="seconds for the whole run (env BENCH_BUDGET; default: the sum "
                             "of its benchmarks' budgets)")
    parser.add_argument("--only", type=lambda s: [x for x in s.split(",") if x], default=None)
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--collect", action="store_true",
                        help="run nothing; summarise the bench/results/<name>.json already there")
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    RESULTS.mkdir(parents=True, exist_ok=True)
    # Every benchmark appears in the summary; those not run now (the other suite, or not in
    # --only, which names benchmarks of either suite) with their last results from disk.
    scripts = discover()
    running = [p.stem for p in discover(args.only) if args.only or in_suite(p.stem, args.suite)]
    total = args.budget if args.budget is not None else suite_budget(running) * MAX_STRETCH
    deadline = time.monotonic() + total
    benches = []
    bar = tqdm(scripts, desc="make bench", unit="bench", disable=args.collect,
               bar_format="{desc}: {n_fmt}/{total_fmt} benchmarks |{bar}| {elapsed} {postfix}")
    for script in bar:
        if args.collect or script.stem not in running:  # the other suite: its last result
            benches.append(collect_one(script))
            continue
        left = deadline - time.monotonic()
        if left <= 1:
            benches.append({"name": script.stem, "command": script.name, "status": "skipped",
                            "returncode": None, "seconds": 0.0, "fresh_result": False,
                            "result": None, "output_tail": "the run's budget was spent"})
            continue
        factor = stretch()
        limit = min(args.timeout or budget(script.stem) * factor, left)
        bar.set_postfix_str(f"{script.name} (up to {limit:.0f} s)")
        bench = run_one(script, limit, args.quick, echo=tqdm.write)
        bench["budget"], bench["stretch"] = budget(script.stem), round(factor, 2)
        tqdm.write(f"== {script.name}: {bench['status']} in {bench['seconds']} s")
        benches.append(bench)
    bar.close()
    date = time.strftime("%Y-%m-%d", time.gmtime())
    report = {"date": date, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "suite": args.suite, "budget": total, "load_average": os.getloadavg(),
              "quick": args.quick, "collected": args.collect, "python": sys.version.split()[0],
              "platform": platform.platform(), "cpu_count": os.cpu_count(), "benches": benches}
    (RESULTS / f"{date}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{date}.md").write_text(f"# Benchmarks {date}\n\n" + summary(report, ""))
    args.docs.parent.mkdir(parents=True, exist_ok=True)
    args.docs.write_text(
        "# Benchmarks\n\nGenerated by `make bench` (`python bench/_runner.py`) from "
        f"`bench/results/{date}.json`; do not edit by hand. Each `bench/*.py` runs on its own "
        "under a timeout and writes `bench/results/<name>.json`; speed is measured here, "
        "never asserted in tests. `make bench` runs the speed suite (every benchmark but the "
        f"quality replays; budget {suite_budget([n for n in BUDGETS if n not in QUALITY]):.0f} "
        "s, each benchmark under its own budget below) and `make bench-quality` the "
        f"quality replays ({', '.join(QUALITY)}; budget {suite_budget(QUALITY):.0f} s); the "
        "other suite's benchmarks show their last results (status `collected`). Budgets are "
        "for a quiet 2-core machine; on a shared one each is stretched by the load average "
        f"per CPU when it starts (at most {MAX_STRETCH}x); a benchmark past its budget is "
        "killed and `make bench` exits 1. `make bench ARGS=--quick` is a short run; "
        "`make bench ARGS=--collect` only re-collects the results already there.\n\n"
        + summary(report, "../bench/results/")
    )
    failed = [b["name"] for b in benches
              if b["status"] != "ok" and b["name"] in running and not args.collect]
    print(f"wrote {RESULTS / (date + '.json')}, {RESULTS / (date + '.md')}, {args.docs}"
          + (f"; not ok: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
