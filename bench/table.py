#!/usr/bin/env python3
"""Turns bench/compare.sh's results.tsv (rep, server, figure, value, unit) into a Markdown table:
the median of each figure per server, and xmppd's advantage over each other server (> 1 means
xmppd is better: a higher rate, or less memory, CPU or latency)."""
import statistics
import sys
from collections import defaultdict

LOWER_IS_BETTER = ("KiB", "MiB", "ms", "us", "s", "logins", "presences", "%")
SERVERS = ["xmppd", "prosody", "ejabberd"]


def main(path):
    values, units, order = defaultdict(list), {}, []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 5:
                continue
            _, server, fig, value, unit = parts
            if fig not in units:
                order.append(fig)
            units[fig] = unit
            values[(fig, server)].append(float(value))
    present = [s for s in SERVERS if any(k[1] == s for k in values)]
    others = [s for s in present if s != "xmppd"]
    head = ["figure", "unit"] + [f"{s} (median of n)" for s in present]
    head += [f"xmppd advantage vs {s}" for s in others if "xmppd" in present]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for fig in order:
        unit = units[fig]
        row = [fig, unit]
        med = {}
        for s in present:
            v = values.get((fig, s), [])
            if v:
                med[s] = statistics.median(v)
                row.append(f"{med[s]:.4g} (n={len(v)})")
            else:
                row.append("–")
        if "xmppd" in present:
            for s in others:
                x, o = med.get("xmppd"), med.get(s)
                if x is None or o is None or x == 0 or o == 0:
                    row.append("–")
                elif unit in LOWER_IS_BETTER:
                    row.append(f"{o / x:.2f}×")
                else:
                    row.append(f"{x / o:.2f}×")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results.tsv")
