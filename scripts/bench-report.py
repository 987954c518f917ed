#!/usr/bin/env python3
"""Turns fencelock-bench JSON lines into bench/results/<date>.md and PNG plots.

    scripts/bench-report.py RESULTS.jsonl OUT_PREFIX [--duration 10s ...]

Writes OUT_PREFIX.md, OUT_PREFIX-throughput.png, OUT_PREFIX-latency.png and
OUT_PREFIX-contended.png (gnuplot). scripts/bench-vs.sh calls it; run it by
hand to redo a report from a kept .jsonl.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

SYSTEMS = ["fencelock", "etcd", "zookeeper"]
TITLES = {"fencelock": "fencelock", "etcd": "etcd", "zookeeper": "ZooKeeper"}


def load(path):
    runs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                runs.append(json.loads(line))
    return runs


def pick(runs, system, workload, clients=None):
    out = [r for r in runs if r["system"] == system and r["workload"] == workload and not r["failure"]]
    if clients is not None:
        out = [r for r in out if r["clients"] == clients]
    return out


def fmt(value, digits=0):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def ratio_line(runs, what, workload, clients, key, better, target):
    """One target check: fencelock's figure against each other system's."""
    f = pick(runs, "fencelock", workload, clients)
    if not f:
        return f"- {what}: no fencelock run"
    parts = []
    ok = True
    compared = 0
    for other in ("etcd", "zookeeper"):
        o = pick(runs, other, workload, clients)
        if not o or not o[0][key]:
            parts.append(f"{TITLES[other]}: no run")
            continue
        compared += 1
        if better == "higher":
            ratio = f[0][key] / o[0][key]
            ok &= ratio >= target
            parts.append(f"{ratio:.2f}x {TITLES[other]} ({fmt(f[0][key])} vs {fmt(o[0][key])})")
        else:
            ratio = f[0][key] / o[0][key]
            ok &= ratio <= target
            parts.append(f"{ratio:.2f} of {TITLES[other]}'s ({f[0][key]:.2f} vs {o[0][key]:.2f} ms)")
    verdict = ("met" if ok else "**missed**") if compared == 2 else "not checked (a system has no run)"
    return f"- {what}: {verdict}: " + "; ".join(parts)


def write_markdown(runs, prefix, args):
    name = os.path.basename(prefix)
    lines = []
    lines.append(f"# fencelock vs etcd vs ZooKeeper: {name}")
    lines.append("")
    lines.append(
        f"Produced by `scripts/bench-vs.sh` (docs/benchmark.md). One machine: {os.cpu_count()} cores "
        f"({cpu_model()}), Linux {platform.release()}; clients and all three 3-node clusters on 127.0.0.1, "
        f"each with its default durability (fsync on); every workload and client count ran against each system "
        f"in turn, the other two idle. "
        f"Each run: {args.warmup} warm-up, then {args.duration} measured. "
        f"fencelock {args.fencelock_version}, etcd {args.etcd_version}, ZooKeeper {args.zookeeper_version}. "
        f"Load average before {args.load_before}, after {args.load_after}; the whole run took {args.elapsed} s."
    )
    lines.append("")
    lines.append("pairs/s: completed acquire+release pairs per second. Latency: acquire, from request to grant "
                 "(in `contended`, including the wait in the queue). CPU: seconds used during the measured "
                 "interval by the three servers together and by fencelock-bench itself.")
    lines.append("")
    lines.append("## Lock workloads")
    lines.append("")
    lines.append("| system | workload | clients | pairs/s | p50 ms | p99 ms | p99.9 ms | errors | server CPU s "
                 "| peak server RSS MiB | client CPU s |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workload in ("uncontended", "contended"):
        for system in SYSTEMS:
            for r in sorted(pick(runs, system, workload), key=lambda r: r["clients"]):
                lines.append(
                    f"| {TITLES[system]} | {workload} | {r['clients']} | {fmt(r['pairs_per_s'])} | "
                    f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p999_ms']:.2f} | {r['errors']} | "
                    f"{r['server_cpu_s']:.2f} | {r['server_peak_rss_kb'] / 1024:.0f} | {r['client_cpu_s']:.2f} |")
    failed = [r for r in runs if r["failure"]]
    if failed:
        lines.append("")
        lines.append("Runs that could not be done:")
        for r in failed:
            lines.append(f"- {TITLES.get(r['system'], r['system'])} {r['workload']} {r['clients']}: {r['failure']}")
    lines.append("")
    lines.append("## Targets (issue #8)")
    lines.append("")
    for clients in (64, 256):
        lines.append(ratio_line(runs, f"`uncontended` at {clients} clients, at least 5x both", "uncontended",
                                clients, "pairs_per_s", "higher", 5.0))
    lines.append(ratio_line(runs, "p50 with 1 client, at most half of both", "uncontended", 1, "p50_ms",
                            "lower", 0.5))
    lines.append(ratio_line(runs, "`contended` at 64 clients, hand-off rate at least 5x both", "contended", 64,
                            "pairs_per_s", "higher", 5.0))
    f = pick(runs, "fencelock", "failover")
    if f and f[0]["recovery_ms"] >= 0:
        verdict = "met" if f[0]["recovery_ms"] < 3000 else "**missed**"
        lines.append(f"- `failover` under 3 s from kill to the next successful acquire: {verdict}: "
                     f"{f[0]['recovery_ms']:.0f} ms")
    else:
        lines.append("- `failover`: no fencelock run")
    lines.append("")
    lines.append("## keepalive: idle sessions held open")
    lines.append("")
    lines.append("| system | sessions | open s | sessions lost | leader CPU s | all servers CPU s | leader peak RSS MiB "
                 "| client CPU s |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for system in SYSTEMS:
        for r in pick(runs, system, "keepalive"):
            lines.append(f"| {TITLES[system]} | {r['clients']:,} | {r['open_s']:.1f} | {r['errors']} | "
                         f"{r['leader_cpu_s']:.2f} | {r['server_cpu_s']:.2f} | "
                         f"{r['leader_peak_rss_kb'] / 1024:.0f} | {r['client_cpu_s']:.2f} |")
    lines.append("")
    lines.append("## failover: kill -9 of the leader during `uncontended`")
    lines.append("")
    lines.append("| system | clients | kill to next acquire ms | kill to 90% of the rate before ms | pairs/s over the run "
                 "| errors |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    for system in SYSTEMS:
        for r in pick(runs, system, "failover"):
            full = f"{r['full_rate_ms']:.0f}" if r["full_rate_ms"] >= 0 else "not reached"
            recovery = f"{r['recovery_ms']:.0f}" if r["recovery_ms"] >= 0 else "not within the run"
            lines.append(f"| {TITLES[system]} | {r['clients']} | {recovery} | {full} | "
                         f"{fmt(r['pairs_per_s'])} | {r['errors']} |")
    lines.append("")
    lines.append("## Client vs server CPU")
    lines.append("")
    lines.append("A driver must not be the bottleneck: in every lock run the servers used more CPU than "
                 "fencelock-bench. Largest client/server ratio per driver:")
    lines.append("")
    for system in SYSTEMS:
        rs = [r for r in runs if r["system"] == system and not r["failure"] and r["server_cpu_s"] > 0
              and r["workload"] in ("uncontended", "contended")]
        if not rs:
            continue
        worst = max(rs, key=lambda r: r["client_cpu_s"] / r["server_cpu_s"])
        lines.append(f"- {TITLES[system]}: {worst['client_cpu_s']:.2f} client CPU s against "
                     f"{worst['server_cpu_s']:.2f} server CPU s "
                     f"({worst['client_cpu_s'] / worst['server_cpu_s']:.2f}; {worst['workload']}, "
                     f"{worst['clients']} clients)")
    lines.append("")
    lines.append("## Plots")
    lines.append("")
    lines.append(f"![throughput against clients]({name}-throughput.png)")
    lines.append("")
    lines.append(f"![acquire latency percentiles against clients]({name}-latency.png)")
    lines.append("")
    lines.append(f"![contended hand-off rate against clients]({name}-contended.png)")
    lines.append("")
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines))


def plot(runs, prefix):
    name = os.path.basename(prefix)
    with tempfile.TemporaryDirectory() as tmp:
        for workload in ("uncontended", "contended"):
            for system in SYSTEMS:
                with open(os.path.join(tmp, f"{workload}-{system}.dat"), "w") as f:
                    for r in sorted(pick(runs, system, workload), key=lambda r: r["clients"]):
                        f.write(f"{r['clients']} {r['pairs_per_s']} {r['p50_ms']} {r['p99_ms']} {r['p999_ms']}\n")

        def lines_for(workload, column):
            return ", ".join(
                f"'{tmp}/{workload}-{s}.dat' using 1:{column} with linespoints lw 2 pt 7 title '{TITLES[s]}'"
                for s in SYSTEMS if os.path.getsize(f"{tmp}/{workload}-{s}.dat") > 0)

        common = ("set terminal pngcairo size 900,560 font 'sans,11'\n"
                  "set logscale x 2\nset grid\nset key top left\nset xlabel 'clients'\n")
        script = common
        script += f"set output '{prefix}-throughput.png'\n"
        script += f"set title 'uncontended: acquire+release pairs per second ({name})'\n"
        script += "set logscale y 10\nset ylabel 'pairs/s'\n"
        script += f"plot {lines_for('uncontended', 2)}\n"
        script += f"set output '{prefix}-contended.png'\n"
        script += f"set title 'contended (one lock): hand-offs per second ({name})'\n"
        script += f"plot {lines_for('contended', 2)}\n"
        script += "set terminal pngcairo size 1500,520 font 'sans,11'\n"
        script += f"set output '{prefix}-latency.png'\n"
        script += "unset title\nset multiplot layout 1,3 title " \
                  f"'uncontended: acquire latency ({name})'\n"
        script += "set ylabel 'ms'\n"
        for column, label in ((3, "p50"), (4, "p99"), (5, "p99.9")):
            script += f"set title '{label}'\nplot {lines_for('uncontended', column)}\n"
        script += "unset multiplot\n"
        subprocess.run(["gnuplot"], input=script, text=True, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results")
    parser.add_argument("prefix")
    for option in ("duration", "warmup", "load-before", "load-after", "elapsed", "fencelock-version",
                   "etcd-version", "zookeeper-version"):
        parser.add_argument("--" + option, default="?")
    args = parser.parse_args()
    runs = load(args.results)
    if not runs:
        sys.exit(f"bench-report: no runs in {args.results}")
    write_markdown(runs, args.prefix, args)
    plot(runs, args.prefix)


if __name__ == "__main__":
    main()
