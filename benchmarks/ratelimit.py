#!/usr/bin/env python3
"""Rate-limit benchmark (issue 11, item 3): a batch of 1,000 jobs against a simulator that
admits R requests/s per credential (a token bucket, burst = one second's worth), a limit the
client is not told. One run per R (20, 100, 500 by default) for the stage as shipped and for the
Python peer (benchmarks/peers/export_items.py). For each run:

  needed = requests the simulator answered with anything but 429 (the work itself)
  bound  = needed / R                 (the least wall time the limit allows)
  share of bound = bound / wall       (1.0 = as fast as the limit allows)
  429 share = 429s / all requests

Writes its section into benchmarks/results/latest.md between the markers
<!-- ratelimit:begin --> and <!-- ratelimit:end --> (the other sections are kept; harness.py
appends results/ratelimit.md when it rewrites latest.md) and the raw figures to
results/ratelimit.json.

  benchmarks/ratelimit.py --build-dir build/release [--rates 20,100,500] [--jobs 1000]
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
API_KEY = "bench-key-not-secret"
PYTHON = "/usr/bin/python3"


def log(m):
    print(f"ratelimit: {m}", file=sys.stderr, flush=True)


class Sim:
    def __init__(self, build, jobs, items, rate):
        self.args = [os.path.join(build, "simulator", "export-items-sim"), "--api-key", API_KEY,
                     "--seed", "11", "--jobs", str(jobs), "--items", str(items),
                     "--companies", "200", "--all-in-progress", "--expires-in", "0",
                     "--rate-limit", str(rate)]
        self.jobs = [j["id"] for j in json.loads(subprocess.run(
            self.args + ["--print-jobs"], check=True, capture_output=True, text=True).stdout)]
        self.proc = subprocess.Popen(self.args + ["--port", "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"simulator did not start: {line!r}")
        self.url = "http://" + line[len("listening on "):]

    def stop(self):
        """Stops the simulator; returns (requests, throttled) from its exit line."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        m = re.search(r"requests (\d+), throttled \(429\) (\d+)", err)
        if not m:
            raise RuntimeError(f"simulator exit line not found: {err!r}")
        return int(m.group(1)), int(m.group(2))


def env():
    e = dict(os.environ)
    e["PLEO_API_KEY"] = API_KEY
    e.pop("PLEO_ACCESS_TOKEN", None)
    return e


def run_one(build, work, who, rate, jobs, items, max_jobs=None):
    sim = Sim(build, jobs, items, rate)
    jobs_file = os.path.join(work, "jobs.txt")
    with open(jobs_file, "w") as f:
        f.write("\n".join(sim.jobs) + "\n")
    out = os.path.join(work, f"{who}.ndjson")
    state = os.path.join(work, f"{who}-state")
    for p in (out, state):
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
    if who == "stage":
        cmd = [os.path.join(build, "apps", "export-items"), "run", "--base-url", sim.url,
               "--jobs-file", jobs_file, "--state-dir", state, "--out", out,
               "--ordering", "entry_id", "--page-size", "500", "--quiet",
               "--summary", os.path.join(work, "summary.json")]
        if max_jobs:
            cmd += ["--max-jobs", str(max_jobs)]
            who = f"stage --max-jobs {max_jobs}"
    else:
        cmd = [PYTHON, os.path.join(HERE, "peers", "export_items.py"), "--base-url", sim.url,
               "--jobs-file", jobs_file, "--state", state, "--out", out,
               "--ordering", "entry_id", "--listing", "cursor"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    wall = time.monotonic() - t0
    requests, throttled = sim.stop()
    lines = sum(1 for _ in open(out)) if os.path.exists(out) else 0
    needed = requests - throttled
    bound = needed / rate
    retry_wait_s = None
    if who.startswith("stage"):
        with open(os.path.join(work, "summary.json")) as f:
            retry_wait_s = json.load(f)["totals"]["httpRetryWaitMs"] / 1000
    rec = dict(who=who, rate=rate, exit=p.returncode, wall_s=round(wall, 2), requests=requests,
               retry_wait_s=retry_wait_s,
               throttled=throttled, needed=needed, bound_s=round(bound, 2),
               share_of_bound=round(bound / wall, 3) if wall > 0 else 0,
               throttled_share=round(throttled / requests, 4) if requests else 0, lines=lines)
    if p.returncode != 0:
        rec["stderr"] = p.stderr[-400:]
    log(json.dumps(rec))
    return rec


def markdown(recs, meta):
    out = ["<!-- ratelimit:begin -->",
           "## Throttling at an unknown rate limit (issue 11, `benchmarks/ratelimit.py`)", "",
           f"Run of `{meta['commit']}` on {meta['date']}: {meta['jobs']:,} jobs x "
           f"{meta['items']} items (one page each), 200 companies; the simulator admits R "
           "requests/s per credential (token bucket, burst one second's worth, 429 with "
           "Retry-After beyond); the clients are not told R. needed = requests answered with "
           "anything but 429; bound = needed / R; share = bound / wall time (1.0 = as fast as "
           "the limit allows). Target: share >= 0.95 with <= 2 % 429s. The burst lets the "
           "first second pass R extra requests, so a share slightly above 1.0 is possible.", "",
           "Requests per job differ: the peer sends one (the item page) and checks nothing; the "
           "stage verifies each job first (GET job: its company for the one-job-per-company "
           "rule, its status and numberOfItems), then reads it again at phase boundaries "
           "(issue 11: a job that expired or finished elsewhere hands nothing on). A read "
           "younger than 1 s (`job_check_fresh_for`) is not repeated: unthrottled, the phases "
           "of a 100-item job pass within it (2 requests per job); at a low limit every "
           "request queues for seconds and both boundary reads happen (4 per job). The share "
           "of bound counts the stage's own requests; the wall time beside the peer's shows "
           "what the checks cost at each limit.", "",
           "| R (req/s) | client | wall (s) | bound (s) | share of bound | requests | req/job | "
           "429s | 429 share | retry waits (s) | lines | exit |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in recs:
        out.append(f"| {r['rate']} | {r['who']} | {r['wall_s']:.1f} | {r['bound_s']:.1f} | "
                   f"{r['share_of_bound']:.3f} | {r['requests']:,} | "
                   f"{r['needed'] / meta['jobs']:.1f} | {r['throttled']:,} | "
                   f"{100 * r['throttled_share']:.1f} % | "
                   f"{'' if r['retry_wait_s'] is None else round(r['retry_wait_s'], 1)} | "
                   f"{r['lines']:,} | {r['exit']} |")
    out += ["", "<!-- ratelimit:end -->"]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--work-dir", default=None)
    ap.add_argument("--results-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--rates", default="20,100,500")
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--max-jobs-variant", type=int, default=0,
                    help="also run the stage with this --max-jobs (0: no)")
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite the section from results/ratelimit.json, run nothing")
    a = ap.parse_args()
    if a.render_only:
        with open(os.path.join(a.results_dir, "ratelimit.json")) as f:
            saved = json.load(f)
        write_section(a.results_dir, saved["runs"], saved["meta"])
        return
    work = a.work_dir or os.path.join(a.build_dir, "ratelimit-work")
    os.makedirs(work, exist_ok=True)
    recs = []
    for rate in [float(x) if "." in x else int(x) for x in a.rates.split(",")]:
        recs.append(run_one(a.build_dir, work, "stage", rate, a.jobs, a.items))
        if a.max_jobs_variant:
            recs.append(run_one(a.build_dir, work, "stage", rate, a.jobs, a.items,
                                a.max_jobs_variant))
        if not a.no_peer:
            recs.append(run_one(a.build_dir, work, "python peer", rate, a.jobs, a.items))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE).stdout.strip()
    meta = dict(commit=commit, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                jobs=a.jobs, items=a.items)
    os.makedirs(a.results_dir, exist_ok=True)
    with open(os.path.join(a.results_dir, "ratelimit.json"), "w") as f:
        json.dump(dict(meta=meta, runs=recs), f, indent=1)
    write_section(a.results_dir, recs, meta)


def write_section(results_dir, recs, meta):
    md_path = os.path.join(results_dir, "latest.md")
    old = open(md_path).read() if os.path.exists(md_path) else ""
    section = markdown(recs, meta)
    with open(os.path.join(results_dir, "ratelimit.md"), "w") as f:  # harness.py keeps it
        f.write(section)
    if "<!-- ratelimit:begin -->" in old:
        new = re.sub(r"<!-- ratelimit:begin -->.*?<!-- ratelimit:end -->\n?", lambda _: section,
                     old, flags=re.S)
    else:
        new = old.rstrip("\n") + "\n\n" + section
    with open(md_path, "w") as f:
        f.write(new)
    log(f"section written to {md_path}")


if __name__ == "__main__":
    main()
