"""Turns Benchmarks/bench.py's runs.jsonl into the table and the JSON report.

Each cell's figure is the median of its runs; ratios compare it with the matching ceiling measured
in the same run (best client count at seqd's batch size, 100) and with the peer's best batch size.
Every cell the mode defines appears, with status ok, or unavailable / pending / skipped / failed and
the reason, so a missing figure is never silent.

    python3 report.py --out DIR --json DIR/latest.json --machine '{...}'

DIR is bench.py's --out: runs.jsonl (one record per run) and mode.json (the sizes, repetitions
and cells of the run).
"""

import argparse
import json
import statistics
from collections import defaultdict

UNITS = {"ceiling": "rows/s", "peer": "jobs/s", "waits": "advances/s", "emails_null": "emails/s",
         "emails_file": "emails/s", "lag": "ms p99", "first_step": "ms p99", "peak_rss": "MiB",
         "sink_ceiling": "msgs/s", "smtp": "msgs/s", "adversarial": "rows/s", "rss_endurance": "MiB",
         "relay": "msgs/s", "crash": "twice/kill"}


def expected_cells(mode: dict) -> list[str]:
    cells = []
    for size in mode["sizes"]:
        for script in ("advance", "email"):
            for batch in mode["batches"]:
                cells += [f"ceiling.{script}.b{batch}.c{c}.n{size}" for c in mode["clients"]]
    cells += [f"peer.pgqueuer.b{b}" for b in mode["peer_batches"]]
    for size in mode["sizes"]:
        for kind in ("waits", "emails_null", "emails_file"):
            cells += [f"seqd.{kind}.r{r}.n{size}" for r in mode["replicas"]]
        cells += [f"seqd.lag.n{size}", f"seqd.first_step.n{size}", f"seqd.peak_rss.n{size}"]
    if "endurance" in mode:  # runs before the cell existed do not list it as missing
        cells += ["seqd.rss_endurance"]
    cells += [f"smtp.sink_ceiling.s{s}" for s in mode["smtp_senders"]]
    cells += [f"smtp.seqd.s{s}" for s in mode["smtp_senders"]]
    if "relay_sessions" in mode:  # runs before issue 15 do not list the relay and crash cells as missing
        cells += [f"relay.seqd.s{s}" for s in mode["relay_sessions"]] + ["crash.smtp.kill"]
    cells += [f"adversarial.{w}.{p}.n{mode['sizes'][0]}" for w in ("ceiling", "seqd") for p in ("during", "after")]
    return cells


def describe(cell: str, mode: dict) -> tuple[str, str, str]:
    """A short human label, the size column and the unit of a cell id."""
    parts = cell.split(".")
    size = next((p[1:] for p in parts if p.startswith("n") and p[1:].isdigit()), "")
    size = f"{int(size):,}" if size else ""
    plural = lambda n, word: f"{n} {word}" + ("" if n == "1" else "s")  # noqa: E731
    if parts[0] == "ceiling":
        what = "ceiling (a) advance" if parts[1] == "advance" else "ceiling (b) email"
        return f"{what}, batch {parts[2][1:]}, {plural(parts[3][1:], 'client')}", size, UNITS["ceiling"]
    if parts[0] == "peer":
        return f"peer PgQueuer no-op jobs, batch {parts[2][1:]}", size, UNITS["peer"]
    if cell == "seqd.rss_endurance":
        return ("seqd daemon RSS growth over a long run (end - after a tenth)", f"{mode.get('endurance', 0):,}",
                UNITS["rss_endurance"])
    if parts[0] == "seqd":
        kind = parts[1]
        if kind in ("waits", "emails_null", "emails_file"):
            label = {"waits": "seqd wait-step advances", "emails_null": "seqd emails, null transport",
                     "emails_file": "seqd emails, file transport"}[kind]
            return f"{label}, {plural(parts[2][1:], 'replica')}", size, UNITS[kind]
        label = {"lag": "seqd lag due -> advanced, p50 / p99", "first_step": "seqd first step after enroll, p50 / p99",
                 "peak_rss": "seqd daemon peak RSS (VmHWM)"}[kind]
        return label, size, UNITS[kind]
    if parts[0] == "smtp":
        if parts[1] == "sink_ceiling":
            return f"smtp-sink ceiling (smtp-source), {plural(parts[2][1:], 'session')}", size, UNITS["sink_ceiling"]
        return f"seqd smtp -> smtp-sink, {plural(parts[2][1:], 'sender')}", size, UNITS["smtp"]
    if parts[0] == "relay":
        return (f"seqd smtp -> smtp-sink -w 1 (1 msg/s a session), {plural(parts[2][1:], 'session')}; x ceiling = x relay limit",
                "", UNITS["relay"])
    if cell == "crash.smtp.kill":
        return ("SIGKILL every few s, 3 replicas x 2 sessions, 20 ms relay: messages on the wire twice per kill", "",
                UNITS["crash"])
    if parts[0] == "adversarial":
        who = "ceiling (a) b100 c2" if parts[1] == "ceiling" else "seqd wait steps, 1 replica"
        return f"held REPEATABLE READ: {who}, {parts[2]}", size, UNITS["adversarial"]
    return cell, size, ""


def summarise(runs: list[dict], mode: dict) -> dict:
    by_cell = defaultdict(list)
    for run in runs:
        by_cell[run["cell"]].append(run)
    cells = {}
    for cell in expected_cells(mode):
        label, size, unit = describe(cell, mode)
        entry = {"id": cell, "label": label, "size": size, "unit": unit, "value": None, "status": "missing",
                 "reason": "no run recorded it (see the run's log)", "runs": []}
        if cell.startswith("seqd.peak_rss."):
            size = cell.rsplit(".n", 1)[1]
            values = [r["peak_rss_mib"] for c, rs in by_cell.items() if c.startswith("seqd.") and c.endswith(f".n{size}")
                      for r in rs if "peak_rss_mib" in r]
            if values:
                entry.update(value=max(values), status="ok", runs=values)
                entry.pop("reason")
            cells[cell] = entry
            continue
        measured = [r for r in by_cell.get(cell, []) if "value" in r]
        problems = [r for r in by_cell.get(cell, []) if "value" not in r]
        if measured:
            entry["runs"] = [r["value"] for r in measured]
            entry["value"] = statistics.median(entry["runs"])
            entry["status"] = "ok"
            entry.pop("reason")
            for key in ("p50_ms", "p99_ms", "max_ms", "advanced_p50_ms", "advanced_p99_ms", "db_rows_per_s", "tps",
                        "transactions_per_row", "warm_mib", "warm_done", "end_mib", "peak_mib", "advances",
                        "relay_limit", "peak_connections", "kills", "twice", "bound_per_kill"):
                values = [r[key] for r in measured if key in r]
                if values:
                    entry[key] = statistics.median(values)
            if problems:
                entry["failed_runs"] = [p.get("reason", "") for p in problems]
        elif problems:
            entry["status"] = problems[-1].get("status", "failed")
            entry["reason"] = problems[-1].get("reason", "")
        cells[cell] = entry

    def best(prefix: str) -> float | None:
        values = [c["value"] for k, c in cells.items() if k.startswith(prefix) and c["value"] is not None]
        return max(values) if values else None

    peer = best("peer.pgqueuer.")
    for cell, entry in cells.items():
        parts = cell.split(".")
        ceiling = None
        if parts[0] == "seqd" and parts[1] in ("waits", "emails_null", "emails_file"):
            size = parts[3]
            script = "advance" if parts[1] == "waits" else "email"
            ceiling = max(
                [c["value"] for k, c in cells.items() if k.startswith(f"ceiling.{script}.b100.") and k.endswith(f".{size}")
                 and c["value"] is not None], default=None)
            entry["ceiling"] = ceiling
            entry["peer"] = peer
        elif parts[0] == "smtp" and parts[1] == "seqd":
            ceiling = cells.get(f"smtp.sink_ceiling.{parts[2]}", {}).get("value")
            entry["ceiling"] = ceiling
        elif parts[0] == "relay":
            ceiling = entry.get("relay_limit")
            entry["ceiling"] = ceiling
        elif parts[0] == "adversarial":
            size = parts[3]
            if parts[1] == "ceiling":
                ceiling = cells.get(f"ceiling.advance.b100.c2.{size}", {}).get("value")
            else:
                ceiling = cells.get(f"adversarial.ceiling.{parts[2]}.{size}", {}).get("value")
            entry["ceiling"] = ceiling
        if entry["value"] is not None:
            if entry.get("ceiling"):
                entry["ratio_ceiling"] = entry["value"] / entry["ceiling"]
            if entry.get("peer"):
                entry["ratio_peer"] = entry["value"] / entry["peer"]
    return cells


def targets(cells: dict, mode: dict) -> list[dict]:
    """The issue's targets, checked against this run's medians."""
    out = []

    def best_of(prefix: str, size: int):
        entries = [c for k, c in cells.items() if k.startswith(prefix) and k.endswith(f".n{size}") and c["value"] is not None]
        return max(entries, key=lambda c: c["value"]) if entries else None

    def add(name, measured, met):
        out.append({"target": name, "measured": measured, "met": met})

    for size in mode["sizes"]:
        e = best_of("seqd.emails_null.", size)
        if e and e.get("ratio_ceiling") is not None:
            add(f"emails (null) >= 70% of ceiling (b) @ {size:,}", f"{e['ratio_ceiling']:.0%}", e["ratio_ceiling"] >= 0.7)
        if e and e.get("ratio_peer") is not None:
            add(f"emails (null) >= 1.5x peer @ {size:,}", f"{e['ratio_peer']:.2f}x", e["ratio_peer"] >= 1.5)
        f = best_of("seqd.emails_file.", size)
        if f and f.get("ratio_ceiling") is not None:
            add(f"emails (file) >= 50% of ceiling (b) @ {size:,}", f"{f['ratio_ceiling']:.0%}", f["ratio_ceiling"] >= 0.5)
        w = best_of("seqd.waits.", size)
        if w and w.get("ratio_ceiling") is not None:
            add(f"wait-step advances >= 70% of ceiling (a) @ {size:,}", f"{w['ratio_ceiling']:.0%}", w["ratio_ceiling"] >= 0.7)
        lag = cells.get(f"seqd.lag.n{size}", {})
        if lag.get("value") is not None:
            add(f"lag p99 <= 1.5 x poll interval (1 s) @ {size:,}", f"{lag['value']:.0f} ms", lag["value"] <= 1500)
        first = cells.get(f"seqd.first_step.n{size}", {})
        if first.get("value") is not None:
            add(f"first step after enroll p99 <= 100 ms @ {size:,}", f"{first['value']:.0f} ms", first["value"] <= 100)
        rss = cells.get(f"seqd.peak_rss.n{size}", {})
        if rss.get("value") is not None:
            add(f"daemon RSS <= 64 MiB @ {size:,}", f"{rss['value']:.1f} MiB", rss["value"] <= 64)
    if len(mode["sizes"]) > 1:
        small, large = mode["sizes"][0], mode["sizes"][-1]
        for kind in ("waits", "emails_null"):
            a, b = best_of(f"seqd.{kind}.", small), best_of(f"seqd.{kind}.", large)
            if a and b:
                add(f"{kind} @ {large:,} within 15% of @ {small:,}", f"{b['value'] / a['value']:.0%}",
                    b["value"] >= 0.85 * a["value"])
    flat = cells.get("seqd.rss_endurance", {})
    # A run so short that the first reading came after half the work (quick mode) shows no growth
    # either way: no verdict.
    if flat.get("value") is not None and flat.get("warm_done", 0) <= flat["advances"] / 2:
        add(f"daemon RSS <= 64 MiB and flat over {flat['advances']:,} emails (end within 10% of after a tenth)",
            f"{flat['warm_mib']:.1f} -> {flat['end_mib']:.1f} MiB, peak {flat['peak_mib']:.1f}",
            flat["peak_mib"] <= 64 and flat["end_mib"] <= 1.1 * flat["warm_mib"])
    for sessions in mode.get("relay_sessions", []):
        relay = cells.get(f"relay.seqd.s{sessions}", {})
        if sessions >= 64 and relay.get("ratio_ceiling") is not None:
            add(f"relay, {sessions} sessions: >= 0.9 of the relay's limit with <= 10 database connections",
                f"{relay['ratio_ceiling']:.2f}, {relay.get('peak_connections', 0):.0f} connections",
                relay["ratio_ceiling"] >= 0.9 and relay.get("peak_connections", 99) <= 10)
    crash = cells.get("crash.smtp.kill", {})
    if crash.get("value") is not None:
        add("crash: <= 2 messages on the wire twice per kill on average, never more than the sessions in flight",
            f"{crash['value']:.2f} per kill ({crash.get('twice', 0):.0f} after {crash.get('kills', 0):.0f} kills)",
            crash["value"] <= 2 and crash.get("twice", 0) <= crash.get("kills", 0) * crash.get("bound_per_kill", 0))
    s4 = cells.get(f"smtp.seqd.s{max(mode['smtp_senders'])}", {})
    if s4.get("ratio_ceiling") is not None:
        add("SMTP >= 70% of the sink's ceiling with 4 senders", f"{s4['ratio_ceiling']:.0%}", s4["ratio_ceiling"] >= 0.7)
    return out


def number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit.startswith("ms") or unit == "MiB":
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.0f}"


def table(cells: dict, goals: list[dict]) -> str:
    rows = [("cell", "enrollments", "figure", "unit", "x ceiling", "x peer", "runs")]
    for entry in cells.values():
        if entry["value"] is None:
            figure = f"{entry['status']}: {entry.get('reason', '')}"
            figure = figure if len(figure) <= 70 else figure[:67] + "..."
            rows.append((entry["label"], entry["size"], figure, "", "", "", ""))
            continue
        figure = number(entry["value"], entry["unit"])
        if "p50_ms" in entry:
            figure = f"{number(entry['p50_ms'], 'ms')} / {number(entry['p99_ms'], 'ms')}"
        if entry["id"] == "crash.smtp.kill":
            figure = f"{entry['value']:.2f}"
        if "end_mib" in entry:
            figure = f"{entry['warm_mib']:.1f} -> {entry['end_mib']:.1f} ({entry['value']:+.1f})"
        ratio_c = f"{entry['ratio_ceiling']:.2f}" if "ratio_ceiling" in entry else ""
        ratio_p = f"{entry['ratio_peer']:.2f}" if "ratio_peer" in entry else ""
        rows.append((entry["label"], entry["size"], figure, entry["unit"], ratio_c, ratio_p, str(len(entry["runs"]))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for index, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(widths[i]) if i in (0, 3) else c.rjust(widths[i]) for i, c in enumerate(r)) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    if goals:
        lines += ["", "| target (issue 6) | measured | met |", "|---|---|---|"]
        lines += [f"| {g['target']} | {g['measured']} | {'yes' if g['met'] else 'no'} |" for g in goals]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--json", required=True, action="append")
    parser.add_argument("--machine", default="{}")
    args = parser.parse_args()
    mode = json.load(open(f"{args.out}/mode.json"))
    runs = [json.loads(line) for line in open(f"{args.out}/runs.jsonl") if line.strip()]
    cells = summarise(runs, mode)
    goals = targets(cells, mode)
    report = {"mode": mode.pop("name"), **json.loads(args.machine), "settings": mode, "cells": list(cells.values()),
              "targets": goals, "table": table(cells, goals)}
    for path in args.json:
        with open(path, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    print(report["table"])


if __name__ == "__main__":
    main()
