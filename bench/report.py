#!/usr/bin/env python3
"""bench/report.py - turns bench/run's results.jsonl into results.md and the
gnuplot data files (throughput.dat, latency.dat, sweep.dat).

Each measurement may have been repeated; the best run (highest throughput,
or for idle the most connections then the lowest RSS) of each is kept.
Ratios compare figures measured in the same run of bench/run."""
import argparse
import datetime
import json
import os


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    return rows


def best(rows, label, mode, key, **match):
    cands = [r for r in rows if r.get("label") == label and r.get("mode") == mode
             and all(r.get(k) == v for k, v in match.items())]
    if not cands:
        return None
    if mode == "idle":
        return max(cands, key=lambda r: (r.get("opened", 0), -r.get("rss_per_conn_bytes", 0)))
    return max(cands, key=lambda r: r.get(key) or 0)


def fmt(v, unit=""):
    if v is None or v == -1:
        return "n/a"
    if isinstance(v, float) and v < 100:
        return "%.2f%s" % (v, unit)
    return "{:,.0f}{}".format(v, unit)


def ratio(a, b):
    if a is None or b is None or b in (0, -1) or a == -1:
        return "n/a"
    return "%.2fx" % (a / b)


def pct(a, b):
    if a is None or b is None or b in (0, -1) or a == -1:
        return "n/a"
    return "%.0f %%" % (100.0 * a / b)


def g(r, k):
    return None if r is None else r.get(k)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--machine", default="")
    ap.add_argument("--command", default="bench/run")
    ap.add_argument("--ping-c", type=int, default=100)
    ap.add_argument("--ping-p", type=int, default=16)
    ap.add_argument("--bcast-c", type=int, default=10000)
    ap.add_argument("--idle-c", type=int, default=50000)
    ap.add_argument("--zbcast-c", type=int, default=1000)
    ap.add_argument("--zidle-c", type=int, default=10000)
    ap.add_argument("--zstatus", type=int, default=2048)
    a = ap.parse_args()
    allrows = load(a.results)
    ratio_line = next((r for r in allrows if r.get("mode") == "ratio"), None)
    # the issue-4 compression runs (a ~2 KB status; idle at --zidle-c) are
    # kept apart from the main rows
    zrows = [r for r in allrows if r.get("mode") == "broadcast" and r.get("status_size")]
    rows = [r for r in allrows if not (r.get("mode") == "broadcast" and r.get("status_size"))]

    P = dict(connections=a.ping_c, inflight=a.ping_p, size=64)
    gp, np_, rp = (best(rows, "mcpgw", "ping", "msgs_per_s", **P), best(rows, "node", "ping", "msgs_per_s", **P),
                   best(rows, "raw", "raw", "msgs_per_s", **P))
    gb, nb = best(rows, "mcpgw", "batch", "sub_msgs_per_s"), best(rows, "node", "batch", "sub_msgs_per_s")
    wmax = max([r.get("window", 0) for r in rows if r.get("mode") == "broadcast"] or [0])
    gc, nc = (best(rows, "mcpgw", "broadcast", "deliveries_per_s", window=wmax),
              best(rows, "node", "broadcast", "deliveries_per_s", window=wmax))
    gl = min([r for r in rows if r.get("label") == "mcpgw" and r.get("mode") == "broadcast" and r.get("window") == 1
              and r.get("deliveries")], key=lambda r: r.get("fanout_p99_us"), default=None)
    nl = min([r for r in rows if r.get("label") == "node" and r.get("mode") == "broadcast" and r.get("window") == 1
              and r.get("deliveries")], key=lambda r: r.get("fanout_p99_us"), default=None)
    gi = best(rows, "mcpgw", "idle", None, connections=a.idle_c)
    ni = best(rows, "node", "idle", None, connections=a.idle_c)
    # the handshake rows: the idle run that connected fastest (the RSS rows
    # keep the leanest run)
    def fastest(label):
        c = [r for r in rows if r.get("label") == label and r.get("mode") == "idle"
             and r.get("connections") == a.idle_c and not r.get("failed")]
        return max(c, key=lambda r: r.get("handshakes_per_s") or 0, default=None)
    gih, nih = fastest("mcpgw"), fastest("node")
    # idle with and without permessage-deflate, same connection count
    gzi0 = best(rows, "mcpgw", "idle", None, connections=a.zidle_c)
    nzi0 = best(rows, "node", "idle", None, connections=a.zidle_c)
    nz = best(rows, "node-deflate", "idle", None, connections=a.zidle_c)
    gz = best(rows, "mcpgw-deflate", "idle", None, connections=a.zidle_c)
    ZB = dict(connections=a.zbcast_c, status_size=a.zstatus)
    gzb0, gzb1 = (best(zrows, "mcpgw", "broadcast", "deliveries_per_s", **ZB),
                  best(zrows, "mcpgw-deflate", "broadcast", "deliveries_per_s", **ZB))
    nzb0, nzb1 = (best(zrows, "node", "broadcast", "deliveries_per_s", **ZB),
                  best(zrows, "node-deflate", "broadcast", "deliveries_per_s", **ZB))
    zonly = not any((gp, np_, gb, nb, gc, nc, gi, ni))
    loads = [r.get("loadavg1", 0) for r in rows if r.get("loadavg1", -1) >= 0]

    L = []
    L.append("# mcpgw benchmark results")
    L.append("")
    L.append("* date: %s" % datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"))
    L.append("* machine: %s" % a.machine)
    L.append("* command: `%s` (server on CPU 0, load generator on CPU 1, best of the repeats)" % a.command)
    if loads:
        L.append("* 1-min load average during the runs: %.1f .. %.1f (above ~2 the cores were shared "
                 "with other work: see the per-CPU-second columns)" % (min(loads), max(loads)))
    L.append("")
    L.append("| benchmark | mcpgw | Node ws | raw TCP | mcpgw / Node | mcpgw / raw | target |")
    L.append("|---|---|---|---|---|---|---|")
    M = len(L)

    def row(name, key, gr, nr, rr=None, target="", unit="", as_ratio=False):
        vs_raw = ""
        if rr:
            vs_raw = ratio(g(gr, key), g(rr, key)) if as_ratio else pct(g(gr, key), g(rr, key))
        L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt(g(gr, key), unit), fmt(g(nr, key), unit), fmt(g(rr, key), unit) if rr else "",
            ratio(g(gr, key), g(nr, key)), vs_raw, target))

    rp_alias = dict(rp) if rp else None
    row("ping %dx%d, %d B: msgs/s" % (a.ping_c, a.ping_p, 64), "msgs_per_s", gp, np_, rp_alias,
        ">= 5x Node, >= 60 % raw")
    row("ping: msgs per server CPU-second", "msgs_per_server_cpu_s", gp, np_, rp_alias, "")
    row("ping latency p50 (us)", "lat_p50_us", gp, np_, rp_alias, as_ratio=True)
    row("ping latency p99 (us)", "lat_p99_us", gp, np_, rp_alias, as_ratio=True)
    row("ping latency p99.9 (us)", "lat_p999_us", gp, np_, rp_alias, as_ratio=True)
    # the echo endpoint ([endpoint.echo] protocol = echo): the transport
    # without the JSON layer, against the raw TCP echo of the same size
    for sz, name in ((64, "64 B"), (1024, "1 KiB")):
        E = dict(connections=a.ping_c, inflight=a.ping_p, size=sz)
        ge, re_ = best(rows, "mcpgw-echo", "ping", "msgs_per_s", **E), best(rows, "raw", "raw", "msgs_per_s", **E)
        if ge:
            row("echo endpoint %dx%d, %s: msgs/s" % (a.ping_c, a.ping_p, name), "msgs_per_s", ge, None, re_)
            row("echo endpoint, %s: msgs per server CPU-second" % name, "msgs_per_server_cpu_s", ge, None,
                re_)
    row("batch of %s: sub-messages/s" % (g(gb, "batch") or "?"), "sub_msgs_per_s", gb, nb)
    row("broadcast to %d, window %d: deliveries/s" % (a.bcast_c, wmax), "deliveries_per_s", gc, nc, None,
        ">= 10x Node")
    row("broadcast: deliveries per server CPU-second", "deliveries_per_server_cpu_s", gc, nc)
    # the raw column of the fan-out rows: the kernel's floor for the same
    # serial fan-out (mcpgw-bench --mode fanout: one send() per socket)
    fo = min([r for r in rows if r.get("mode") == "fanout"], key=lambda r: r.get("fanout_p99_us"),
             default=None)
    row("broadcast, window 1: fan-out p50 (us)", "fanout_p50_us", gl, nl, fo, as_ratio=True)
    row("broadcast, window 1: fan-out p99 (us)", "fanout_p99_us", gl, nl, fo, "< 50,000 us", as_ratio=True)
    row("idle: connections held", "opened", gi, ni, None, "50,000")
    row("idle: handshakes/s (HS256)", "handshakes_per_s", gih, nih, None, ">= 20,000 on one core")
    row("idle: handshakes per server CPU-second", "handshakes_per_server_cpu_s", gih, nih)
    row("idle: server RSS per connection (bytes)", "rss_per_conn_bytes", gi, ni, None, "< 4,096")
    if zonly:
        del L[M:]
    # ------------------------------------------------ compression (issue 4)

    def zneg(r, key):
        if not r:
            return "n/a"
        if not r.get("deflate_negotiated"):
            return "%s (not negotiated)" % fmt(g(r, key))
        return fmt(g(r, key))

    def zrow(name, key, gr, nr, target="", neg=False):
        f = zneg if neg else (lambda r, k: fmt(g(r, k)))
        L.append("| %s | %s | %s |  | %s |  | %s |" % (name, f(gr, key), f(nr, key),
                                                      ratio(g(gr, key), g(nr, key)), target))

    def zratio(name, key, a0, a1, b0, b1, target):
        L.append("| %s | %s | %s |  |  |  | %s |" % (name, ratio(g(a1, key), g(a0, key)),
                                                    ratio(g(b1, key), g(b0, key)), target))

    def zdiff(name, key, a0, a1, b0, b1, target):
        def d(x, y):
            u, v = g(x, key), g(y, key)
            if u in (None, -1) or v in (None, -1):
                return "n/a"
            return "{:+,.0f}".format(u - v)
        L.append("| %s | %s | %s |  |  |  | %s |" % (name, d(a1, a0), d(b1, b0), target))

    if any((gzb0, gzb1, nzb0, nzb1)):
        bn = "broadcast ~%d B status to %d, window %d" % (
            g(gzb1 or gzb0 or nzb1 or nzb0, "inflated_bytes_per_msg") or a.zstatus, a.zbcast_c,
            g(gzb1 or gzb0 or nzb1 or nzb0, "window") or 8)
        zrow(bn + ", uncompressed: deliveries/s", "deliveries_per_s", gzb0, nzb0)
        zrow(bn + ", permessage-deflate: deliveries/s", "deliveries_per_s", gzb1, nzb1, neg=True)
        zratio("broadcast, compressed / uncompressed deliveries/s", "deliveries_per_s", gzb0, gzb1, nzb0, nzb1,
               "> 0.5x")
        zrow("broadcast ~2 KB, uncompressed: deliveries per server CPU-second", "deliveries_per_server_cpu_s",
             gzb0, nzb0)
        zrow("broadcast ~2 KB, permessage-deflate: deliveries per server CPU-second",
             "deliveries_per_server_cpu_s", gzb1, nzb1, neg=True)
        zratio("broadcast, compressed / uncompressed per server CPU-second", "deliveries_per_server_cpu_s",
               gzb0, gzb1, nzb0, nzb1, "> 0.5x")
        zrow("broadcast ~2 KB, permessage-deflate: payload bytes on the wire per delivery",
             "compressed_wire_bytes_per_msg", gzb1, nzb1)
    if any((gz, nz, gzi0, nzi0)):
        zrow("idle at %d: server RSS per connection, uncompressed (bytes)" % a.zidle_c, "rss_per_conn_bytes",
             gzi0, nzi0)
        zrow("idle at %d, permessage-deflate: server RSS per connection (bytes)" % a.zidle_c,
             "rss_per_conn_bytes", gz, nz, "< 5,120", neg=True)
        zdiff("idle: RSS added per connection by compression (bytes)", "rss_per_conn_bytes", gzi0, gz, nzi0, nz,
              "< 1,024")
    if ratio_line:
        L.append("| compression ratio, representative JSON (compressed / uncompressed; >= 1 KiB only) | "
                 "%.3f (%.3f) |  |  |  |  |  |" % (ratio_line.get("ratio", -1), ratio_line.get("ratio_above_1k", -1)))
    L.append("")
    if ratio_line:
        L.append("Compression ratio (`mcpgw-bench --mode ratio`: zlib level %s, window 2^%s, memLevel %s, "
                 "each message compressed afresh, sync-flush tail removed; %d messages of each kind, all different):" % (
                     ratio_line.get("level"), ratio_line.get("window_bits"), ratio_line.get("mem_level"),
                     (ratio_line.get("samples") or [{}])[0].get("messages", 0)))
        L.append("")
        L.append("| message | bytes | compressed | ratio | deflate us/msg (median) |")
        L.append("|---|---|---|---|---|")
        for smp in ratio_line.get("samples", []):
            L.append("| %s | %s | %s | %.3f | %.1f |" % (smp["name"], fmt(smp["avg_bytes"]), fmt(smp["avg_compressed"]),
                                                      smp["ratio"], smp.get("deflate_median_us", smp.get("deflate_us", -1))))
        L.append("")
    fails = []
    seen = set()
    for r in (gp, np_, gb, nb, gc, nc, gl, nl, gi, ni, gz, nz, gzi0, nzi0, gzb0, gzb1, nzb0, nzb1):
        if r is not None and id(r) in seen:
            continue
        seen.add(id(r))
        if r and (r.get("failed") or r.get("closed_early") or r.get("unexpected") or r.get("inflate_errors")):
            fails.append("%s %s: failed=%s %s closed_early=%s unexpected=%s" % (
                r["label"], r["mode"], r.get("failed"), json.dumps(r.get("failures")),
                r.get("closed_early"), r.get("unexpected")) +
                (" inflate_errors=%s" % r["inflate_errors"] if r.get("inflate_errors") else ""))
    if fails:
        L.append("Failures and anomalies: " + "; ".join(fails))
        L.append("")

    sweep = []
    for p in sorted({r.get("inflight") for r in rows if r.get("mode") in ("ping", "raw") and r.get("inflight")}):
        q = dict(connections=a.ping_c, inflight=p)
        s = (best(rows, "mcpgw", "ping", "msgs_per_s", **q), best(rows, "node", "ping", "msgs_per_s", **q),
             best(rows, "raw", "raw", "msgs_per_s", **q))
        if any(s):
            sweep.append((p, s))
    if len(sweep) > 1:
        L.append("Ping sweep (%d connections, in flight per connection): msgs/s and p99 latency" % a.ping_c)
        L.append("")
        L.append("| in flight | mcpgw msgs/s | p99 us | Node msgs/s | p99 us | raw msgs/s | p99 us |")
        L.append("|---|---|---|---|---|---|---|")
        for p, s in sweep:
            L.append("| %d | %s |" % (p, " | ".join("%s | %s" % (fmt(g(r, "msgs_per_s")), fmt(g(r, "lat_p99_us")))
                                                   for r in s)))
        L.append("")
    if not zonly:
        L.append("Plots: `throughput.png`, `latency.png`%s. Raw JSON lines: `results.jsonl`." %
                 (", `sweep.png`" if len(sweep) > 1 else ""))
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write("\n".join(L) + "\n")

    def v(r, k):
        x = g(r, k)
        return x if x not in (None, -1) else 0

    with open(os.path.join(a.out, "throughput.dat"), "w") as f:
        f.write("# benchmark mcpgw node raw\n")
        f.write('"ping msgs/s" %s %s %s\n' % (v(gp, "msgs_per_s"), v(np_, "msgs_per_s"), v(rp, "msgs_per_s")))
        f.write('"batch sub-msgs/s" %s %s 0\n' % (v(gb, "sub_msgs_per_s"), v(nb, "sub_msgs_per_s")))
        f.write('"broadcast deliveries/s" %s %s 0\n' % (v(gc, "deliveries_per_s"), v(nc, "deliveries_per_s")))
        f.write('"handshakes/s" %s %s 0\n' % (v(gih, "handshakes_per_s"), v(nih, "handshakes_per_s")))
    with open(os.path.join(a.out, "latency.dat"), "w") as f:
        f.write("# latency_us p50 p99 p99.9\n")
        for name, r, pre in (("mcpgw ping", gp, "lat"), ("Node ping", np_, "lat"), ("raw TCP", rp, "lat"),
                             ("mcpgw fan-out", gl, "fanout"), ("Node fan-out", nl, "fanout")):
            if r:
                f.write('"%s" %s %s %s\n' % (name, max(v(r, pre + "_p50_us"), 1), max(v(r, pre + "_p99_us"), 1),
                                            max(v(r, pre + "_p999_us"), 1)))
    with open(os.path.join(a.out, "sweep.dat"), "w") as f:
        f.write("# inflight mcpgw_msgs mcpgw_p99 node_msgs node_p99 raw_msgs raw_p99\n")
        for p, s in sweep:
            f.write("%d %s\n" % (p, " ".join("%s %s" % (v(r, "msgs_per_s"), v(r, "lat_p99_us")) for r in s)))


if __name__ == "__main__":
    main()
