#!/usr/bin/env python3
"""Prints the latest criterion results as markdown tables, one per group, with each
contender's ratio to the group's peers (the tables of docs/benchmarks.md).

    cargo bench --bench direct --bench keyed --bench threads --bench eviction
    python3 benches/ratios.py [target/criterion]

Times are criterion's mean per iteration (`new/estimates.json`); for groups with a throughput
(elements per iteration) the per-element time and the elements per second are shown too.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path


def load(root):
    groups = defaultdict(list)
    for bench in sorted(Path(root).glob("**/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        mean = estimates["mean"]["point_estimate"]
        elements = (meta.get("throughput") or {}).get("Elements") or 1
        groups[meta["group_id"]].append(
            (meta["function_id"], meta.get("value_str") or "", mean, elements)
        )
    return groups


def fmt_time(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
    for group, rows in sorted(load(root).items()):
        # Peers: the other crates' contenders. With a parameter (thread counts), a row is
        # compared with the peers of the same parameter, and scaled against its own first one.
        peer_names = sorted({f for f, _, _, _ in rows if not f.startswith("nanolimit")})
        per = {(f, v): mean / elements for f, v, mean, elements in rows}
        values = sorted({v for _, v, _, _ in rows}, key=lambda v: (len(v), v))
        parameterized = values != [""]
        print(f"\n`{group}`\n")
        header = "| contender | time / element | elements/s |"
        header += "".join(f" time ÷ {p} |" for p in peer_names)
        if parameterized:
            header += f" throughput ÷ {values[0]} |"
        print(header)
        print("|---|---:|---:|" + "---:|" * (len(peer_names) + parameterized))
        for f, v, _, _ in sorted(rows, key=lambda r: (values.index(r[1]), r[0])):
            t = per[(f, v)]
            name = f"{f}/{v}" if v else f
            line = f"| {name} | {fmt_time(t)} | {1e9 / t / 1e6:.1f} M |"
            for p in peer_names:
                line += f" {t / per[(p, v)]:.2f} |" if (p, v) in per else " |"
            if parameterized:
                base = per.get((f, values[0]))
                line += f" {base / t:.2f} |" if base else " |"
            print(line)


if __name__ == "__main__":
    main()
