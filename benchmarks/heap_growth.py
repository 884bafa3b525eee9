#!/usr/bin/env python3
"""What the live heap gained between two moments of a run, by allocation site (issue 14).

heaptrack's own views show the peak and the leaks at exit; memory that grows with the number
of jobs and is freed at exit shows in neither. This reads heaptrack's trace (the `.zst` file
`heaptrack -o FILE export-items run ...` writes), keeps the live allocations per allocation
site, takes a snapshot at two times (seconds since start) and prints the sites whose live
bytes grew the most between them, with their first frames (std::/allocator frames left out).

    heaptrack -o /tmp/ht build/release/apps/export-items run ...
    benchmarks/heap_growth.py /tmp/ht.zst 10,60 [--top 25]

Needs `zstdcat` (Debian's zstd). Reads heaptrack's trace format version 3 (Debian 12's
heaptrack 1.4): `+`/`-` lines name an allocation-info index (`a <size> <trace>`), `t` lines
chain trace nodes, `i` lines resolve instruction pointers, `c` lines are timestamps (ms).
"""
import argparse
import collections
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace", help="heaptrack's .zst file")
    ap.add_argument("times", help="two moments in seconds, e.g. 10,60")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--frames", type=int, default=7, help="frames shown per site")
    args = ap.parse_args()
    marks = [float(x) for x in args.times.split(",")]
    if len(marks) != 2 or marks[0] >= marks[1]:
        sys.exit("heap_growth.py: times must be two increasing moments, e.g. 10,60")
    src = subprocess.Popen(["zstdcat", args.trace], stdout=subprocess.PIPE, text=True,
                           bufsize=1 << 20).stdout
    strings, ips, traces, ainfo = [""], [None], [None], [None]
    live = collections.Counter()  # allocation-info index -> live allocations
    snaps, mi = [], 0
    for line in src:
        c = line[0]
        if c == "+":
            live[int(line[2:], 16)] += 1
        elif c == "-":
            live[int(line[2:], 16)] -= 1
        elif c == "a":
            _, size, trace = line.split()
            ainfo.append((int(size, 16), int(trace, 16)))
        elif c == "t":
            _, ip, parent = line.split()
            traces.append((int(ip, 16), int(parent, 16)))
        elif c == "i":
            parts = line.split()
            rest, frames = parts[3:], []
            while rest:  # fn [file line], then inlined frames as fn file line
                fn = int(rest[0], 16)
                fl = int(rest[1], 16) if len(rest) > 1 else 0
                ln = int(rest[2], 16) if len(rest) > 2 else 0
                frames.append((fn, fl, ln))
                rest = rest[3:]
            ips.append((int(parts[2], 16), frames))
        elif c == "s":
            body = line[2:].rstrip("\n")
            strings.append(body.split(" ", 1)[1] if " " in body else "")
        elif c == "c":
            now = int(line[2:], 16) / 1000.0
            while mi < 2 and now >= marks[mi]:
                snaps.append((now, dict(live)))
                mi += 1
    if len(snaps) < 2:
        sys.exit(f"heap_growth.py: the trace ends before {marks[len(snaps)]} s")

    def frames_of(trace):
        out = []
        while trace:
            ip, parent = traces[trace]
            mod, frames = ips[ip]
            for fn, fl, ln in reversed(frames):
                where = strings[fl].rsplit("/", 1)[-1] if fl else ""
                out.append(f"{strings[fn][:90]} {where}:{ln}")
            if not frames:
                out.append(f"[{strings[mod].rsplit('/', 1)[-1]}]")
            trace = parent
        return out

    (t0, a), (t1, b) = snaps
    by_site = collections.Counter()
    for k in set(a) | set(b):
        d = b.get(k, 0) - a.get(k, 0)
        if d:
            size, trace = ainfo[k]
            skip = ("std::", "__", "operator new", "malloc", "allocate", "void std", "_M_",
                    "[libheaptrack")
            shown = [f for f in frames_of(trace) if not f.startswith(skip)]
            by_site[" | ".join(shown[:args.frames])] += d * size
    print(f"live heap from {t0:.1f} s to {t1:.1f} s: {sum(by_site.values()):+,} bytes")
    for site, d in by_site.most_common(args.top):
        print(f"{d:+,}  {site}")


if __name__ == "__main__":
    main()
