"""Plots fan-out latency against the number of students, for invigil and each peer, from the
results.json of an `invigil-bench run`: p99 as solid lines, p50 dashed, the last receipt dotted.

Usage: plot.py RESULTS_JSON OUTPUT_PNG"""

import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {
    "invigil": "#1b6e3a",
    "node-ws": "#3465a4",
    "socket.io": "#c4a000",
    "python-websockets": "#a40000",
}


def series(rows, target, key):
    points = sorted(
        (row["students"], statistics.median_low(c[key] for c in row["changes"]))
        for row in rows
        if row["target"] == target and row["changes"]
    )
    return [n for n, _ in points], [v for _, v in points]


def main(results_path, output):
    with open(results_path, encoding="utf-8") as f:
        results = json.load(f)
    rows = results["fanout"]
    targets = [t for t in COLORS if any(r["target"] == t for r in rows)]
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    for target in targets:
        color = COLORS[target]
        for key, style, label in (("p99", "-", "p99"), ("p50", "--", "p50"), ("max", ":", "last")):
            xs, ys = series(rows, target, key)
            ax.plot(xs, ys, style, color=color, marker="o" if key == "p99" else None,
                    label=f"{target} {label}", linewidth=2 if key == "p99" else 1)
    ax.set_xlabel("students connected")
    ax.set_ylabel("from the trigger to receipt (ms)")
    ax.set_title(f"Fan-out of one update to every student ({results['machine']['cpus']} cores, "
                 f"server and generator on one machine)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(ncol=len(targets), fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(output)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
