#!/usr/bin/env python3
"""Plot the scale benchmark: how detection time, memory, CPU and membership
traffic grow with the number of servers.

    go run ./bench -only scale -scale 10,30,100 -scale-csv scale.csv
    python3 bench/plot_scale.py scale.csv docs/scale.png

Needs matplotlib (Debian: python3-matplotlib).
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_scale.py SCALE.csv OUT.png")
    with open(sys.argv[1]) as f:
        rows = list(csv.DictReader(f))
    n = [int(r["servers"]) for r in rows]
    panels = [
        ("kill_seen_s", "kill -9 seen (s)"),
        ("converge_s", "all see all after last start (s)"),
        ("rss_mean_mib", "idle RSS per server (MiB)"),
        ("cpu_pct_of_core", "idle CPU, whole cluster (% of a core)"),
        ("traffic_kib_s_per_server", "loopback traffic per server (KiB/s)"),
        ("ls_ms", "circuit ls / (ms, CLI)"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, (key, title) in zip(axes.flat, panels):
        ax.plot(n, [float(r[key]) for r in rows], marker="o", label="circuit")
        if key == "cpu_pct_of_core" and rows and "beat_floor_cpu_pct_of_core" in rows[0]:
            ax.plot(n, [float(r["beat_floor_cpu_pct_of_core"]) for r in rows], marker="s",
                    linestyle="--", label="beat floor (bench/beatfloor)")
            ax.axhline(10, color="grey", linewidth=0.8, label="goal at 100 servers")
            ax.legend(fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("servers")
        ax.set_xticks(n)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    fig.suptitle("circuit membership by cluster size (2 cores, loopback, LAN timers)")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=100)


if __name__ == "__main__":
    main()
