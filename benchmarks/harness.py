#!/usr/bin/env python3
"""The load-benchmark harness behind `make bench` (benchmarks/README.md).

Starts the simulator as its own process per scenario, runs the contenders interleaved
(A B C A B C ...) over several rounds, each in a fresh state directory and output file, and
records per run the wall time, CPU seconds (user + sys of the contender and its children) and
peak RSS (both from /usr/bin/time), plus the simulator's CPU seconds over the run. Writes
results as JSON, a Markdown table and gnuplot PNGs; sections of latest.md "written by hand"
are kept. The `scale` batches check the one-job-per-company rule on the simulator's request
log. Only the standard library is used.

Usage: harness.py --build-dir DIR --work-dir DIR [--results-dir DIR] [--smoke] [--rounds N]
                  [--only SCENARIO,...]
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
API_KEY = "bench-key-not-secret"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PYTHON = "/usr/bin/python3"  # Debian's, with python3-requests


def fsync_latency_ms(samples=40):
    """Median time of a 4 KiB write + fsync in the work dir: how busy the disk is."""
    path = os.path.join(WORK, "fsync-probe")
    ts = []
    with open(path, "wb") as f:
        for _ in range(samples):
            t0 = time.monotonic()
            f.write(b"x" * 4096)
            f.flush()
            os.fsync(f.fileno())
            ts.append((time.monotonic() - t0) * 1000)
    os.remove(path)
    return round(statistics.median(ts), 3)


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Simulator:
    """export-items-sim in its own process; SIGTERM on stop. With `request_log` it writes
    every answered request to that file (`--request-log`), complete once stop() returns."""

    def __init__(self, build, jobs, items, companies=None, faults=None, seed=7, config=None,
                 request_log=None):
        self.args = [os.path.join(build, "simulator", "export-items-sim"), "--api-key", API_KEY,
                     "--seed", str(seed), "--jobs", str(jobs), "--items", str(items),
                     "--all-in-progress", "--expires-in", "0"]
        if config:
            self.args += ["--config", config]
        if companies:
            self.args += ["--companies", str(companies)]
        if faults:
            self.args += ["--faults", faults]
        self.faults = faults
        self.job_list = json.loads(
            subprocess.run(self.args + ["--print-jobs"], check=True, capture_output=True,
                           text=True).stdout)
        self.jobs = [j["id"] for j in self.job_list]
        self.request_log = request_log
        extra, self.stderr = [], subprocess.DEVNULL
        if request_log:
            extra = ["--request-log", request_log]
            self.stderr = open(os.path.join(WORK, "sim-stderr.txt"), "w+")
        self.proc = subprocess.Popen(self.args + extra + ["--port", "0"], stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"simulator did not start: {line!r}")
        self.url = "http://" + line[len("listening on "):]

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.request_log and self.stderr is not subprocess.DEVNULL:
            self.stderr.seek(0)
            err = self.stderr.read().strip()
            self.stderr.close()
            self.stderr = subprocess.DEVNULL
            if self.proc.returncode != 0:  # killed, or a write of the log failed
                raise RuntimeError(f"simulator exited {self.proc.returncode}, its request log "
                                   f"{self.request_log} is incomplete: {err[-400:]}")


def timed(cmd, env=None, cwd=None, sim=None, timeout=600):
    """Runs cmd under /usr/bin/time; returns wall, cpu, rss_kb, stdout, sim_cpu."""
    tfile = cmd_time_file()
    sim0 = sim.cpu_seconds() if sim else 0.0
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tfile] + cmd, env=env,
                       cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - t0
    sim_cpu = (sim.cpu_seconds() - sim0) if sim else 0.0
    if p.returncode != 0:
        raise RuntimeError(f"{os.path.basename(cmd[0])} {' '.join(cmd[1:3])} ... exited "
                           f"{p.returncode}: {p.stderr.strip()[-800:]}")
    with open(tfile) as f:
        last = f.read().strip().splitlines()[-1].split()
    return {"wall_s": wall, "cpu_s": float(last[1]) + float(last[2]), "rss_kb": int(last[3]),
            "sim_cpu_s": sim_cpu, "stdout": p.stdout}


_time_counter = [0]


def cmd_time_file():
    _time_counter[0] += 1
    return os.path.join(WORK, f"time.{_time_counter[0] % 4}")


def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return n
            n += b.count(b"\n")


def fresh(*paths):
    for p in paths:
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
        for suffix in ("-wal", "-shm", "-journal", ".reconcile.ndjson"):
            if os.path.exists(p + suffix):
                os.remove(p + suffix)


def env_with_key():
    e = dict(os.environ)
    e["PLEO_API_KEY"] = API_KEY
    e.pop("PLEO_ACCESS_TOKEN", None)
    return e


# --- contenders: each returns a callable(sim, jobs_file) -> run record --------------------------

def stage(ordering, listing=None, config=None, max_jobs=None):
    """The stage as shipped (listing=None: the default, parallel offset listing), or with
    --listing cursor|parallel given explicitly."""
    def run(sim, jobs_file):
        state, out = os.path.join(WORK, "stage-state"), os.path.join(WORK, "stage.ndjson")
        fresh(state, out)
        cmd = [os.path.join(BUILD, "apps", "export-items"), "run", "--base-url", sim.url,
               "--jobs-file", jobs_file, "--state-dir", state, "--out", out,
               "--ordering", ordering, "--page-size", "500", "--quiet",
               "--summary", os.path.join(WORK, "summary.json")]
        if listing:
            cmd += ["--listing", listing]
        if config:
            cmd += ["--config", config]
        if max_jobs:
            cmd += ["--max-jobs", str(max_jobs)]
        r = timed(cmd, env=env_with_key(), sim=sim)
        r["emitted"] = count_lines(out)
        return r
    return run


def python_peer(ordering, listing="cursor"):
    def run(sim, jobs_file):
        state, out = os.path.join(WORK, "py.db"), os.path.join(WORK, "py.ndjson")
        fresh(state, out)
        cmd = [PYTHON, os.path.join(HERE, "peers", "export_items.py"), "--base-url", sim.url,
               "--jobs-file", jobs_file, "--state", state, "--out", out, "--ordering", ordering,
               "--listing", listing]
        r = timed(cmd, env=env_with_key(), sim=sim)
        r["emitted"] = count_lines(out)
        return r
    return run


def node_peer(ordering):
    def run(sim, jobs_file):
        state, out = os.path.join(WORK, "node.db"), os.path.join(WORK, "node.ndjson")
        fresh(state, out)
        cmd = ["node", os.path.join(HERE, "peers", "node", "export-items.mjs"), "--base-url",
               sim.url, "--jobs-file", jobs_file, "--state", state, "--out", out,
               "--ordering", ordering]
        r = timed(cmd, env=env_with_key(), sim=sim)
        r["emitted"] = count_lines(out)
        return r
    return run


def wire(endpoint="items", mode="cursor", concurrency=1, dump=None):
    def run(sim, jobs_file):
        cmd = [os.path.join(BUILD, "benchmarks", "ei_bench_wire"), "--base-url", sim.url,
               "--job", sim.jobs[0], "--endpoint", endpoint, "--mode", mode,
               "--concurrency", str(concurrency)]
        if dump:
            cmd += ["--dump", dump]
        r = timed(cmd, env=env_with_key(), sim=sim)
        r["wire"] = json.loads(r["stdout"])
        r["emitted"] = None
        return r
    return run


def node_available():
    return (shutil.which("node") is not None and
            os.path.isdir(os.path.join(HERE, "peers", "node", "node_modules", "better-sqlite3")))


def python_available():
    return subprocess.run([PYTHON, "-c", "import requests"], capture_output=True).returncode == 0


# --- scenarios ---------------------------------------------------------------------------------

def summarise(name, rounds_data, items):
    walls = [r["wall_s"] for r in rounds_data]
    ips = [items / w for w in walls]
    return {
        "contender": name, "rounds": len(rounds_data), "items": items,
        "emitted": rounds_data[-1]["emitted"],
        "items_per_s": {"median": statistics.median(ips), "min": min(ips), "max": max(ips)},
        "wall_s": {"median": statistics.median(walls), "min": min(walls), "max": max(walls)},
        "cpu_s": statistics.median(r["cpu_s"] for r in rounds_data),
        "rss_mib": max(r["rss_kb"] for r in rounds_data) / 1024.0,
        "sim_cpu_s": statistics.median(r["sim_cpu_s"] for r in rounds_data),
        "runs": [{k: v for k, v in r.items() if k != "stdout"} for r in rounds_data],
    }


def run_scenario(key, title, sim_kw, contenders, rounds, notes=""):
    """contenders: list of (name, fn, rounds_or_None). Interleaved: round r runs every
    contender that still has rounds to do, in list order."""
    log(f"scenario {key}: {title}")
    sim = Simulator(BUILD, **sim_kw)
    try:
        jobs_file = os.path.join(WORK, f"jobs-{key}.txt")
        with open(jobs_file, "w") as f:
            f.write("\n".join(sim.jobs) + "\n")
        items = sim_kw["jobs"] * sim_kw["items"]
        data = {name: [] for name, _, _ in contenders}
        for r in range(rounds):
            for name, fn, n in contenders:
                if n is not None and r >= n:
                    continue
                rec = fn(sim, jobs_file)
                data[name].append(rec)
                log(f"  {key} round {r + 1} {name}: {rec['wall_s']:.2f} s, "
                    f"{items / rec['wall_s']:,.0f} items/s, cpu {rec['cpu_s']:.2f} s, "
                    f"rss {rec['rss_kb'] / 1024:.0f} MiB")
        # Every contender that writes items must have written the same number.
        emitted = {n: d[-1]["emitted"] for n, d in data.items() if d and d[-1]["emitted"] is not None}
        if len(set(emitted.values())) > 1:
            raise RuntimeError(f"scenario {key}: contenders disagree on the items written: "
                               f"{emitted}")
        return {"key": key, "title": title, "notes": notes,
                "simulator": {k: v for k, v in sim_kw.items()},
                "contenders": [summarise(n, data[n], items) for n, _, _ in contenders if data[n]]}
    finally:
        sim.stop()


def ceilings(sizes, rounds):
    """Parse-only and state-writes-only ceilings (the wire ceiling runs inside the scenarios)."""
    log("component ceilings: parse, state writes")
    sim = Simulator(BUILD, jobs=1, items=1000)
    control, data = os.path.join(WORK, "page-control.json"), os.path.join(WORK, "page-data.json")
    try:
        wire(dump=control)(sim, None)
        wire(endpoint="export-items", dump=data)(sim, None)
    finally:
        sim.stop()
    p = subprocess.run([os.path.join(BUILD, "benchmarks", "ei_bench_parse"), control, data,
                        "--rounds", str(max(rounds, 3)), "--min-seconds",
                        "0.05" if sizes["smoke"] else "0.3"],
                       check=True, capture_output=True, text=True)
    parse = json.loads(p.stdout)
    storage_runs = []
    for _ in range(max(rounds, 3)):
        s = subprocess.run([os.path.join(BUILD, "benchmarks", "ei_storage_throughput"),
                            os.path.join(WORK, "storage-scratch"), str(sizes["storage_pages"])],
                           check=True, capture_output=True, text=True).stdout
        rec = {}
        for line in s.splitlines():
            if line.startswith("commit_page"):
                rec["commit_page_" + line.split("sync=")[1].split()[0]] = float(
                    line.split()[-2])
            elif line.startswith("commit_dispatch"):
                rec["commit_dispatch_per_s"] = float(line.split()[-2])
            elif line.startswith("commit_acks + sink"):
                rec["commit_acks_per_s"] = float(line.split()[-2])
        storage_runs.append(rec)
    storage = {k: {"median": statistics.median(r[k] for r in storage_runs),
                   "min": min(r[k] for r in storage_runs), "max": max(r[k] for r in storage_runs)}
               for k in storage_runs[0]}
    return {"parse": parse, "storage": storage}


def latency_scenario(sizes, rounds, have_py):
    # Sequential cursor paging against the stage as shipped (parallel offset listing, 16
    # requests in flight over as many connections) and tuned for latency (32 in flight),
    # against the same peer and wire client.
    tuned = os.path.join(WORK, "parallel-32.json")
    with open(tuned, "w") as f:
        json.dump({"parallel_requests": 32, "http": {"max_connections": 32}}, f)
    contenders = [
        ("stage cursor (--listing cursor)", stage("entry_id", "cursor"), None),
        ("stage parallel (shipped: 16 in flight)", stage("entry_id"), None),
        ("stage parallel (32 in flight, 32 conns)", stage("entry_id", None, tuned), None),
        ("wire client offset x32", wire(mode="offset", concurrency=32), None),
    ]
    if have_py:
        contenders.append(("python peer parallel x16", python_peer("entry_id", "parallel"), None))
    return run_scenario(
        "latency", f"50 ms per request, 1 job x {sizes['latency']:,} items, entry_id",
        dict(jobs=1, items=sizes["latency"], faults="items:latency=50ms@all"), contenders, rounds)


def recovery_scenario(sizes, rounds, uninterrupted_wall):
    """SIGKILL the stage at ~50 % of dispatch (output bytes vs an uninterrupted run), then time
    the restart to the finish."""
    n = sizes["recovery"]
    log(f"scenario recovery: 1 job x {n:,}, killed at ~50 % of dispatch")
    sim = Simulator(BUILD, jobs=1, items=n)
    try:
        jobs_file = os.path.join(WORK, "jobs-recovery.txt")
        with open(jobs_file, "w") as f:
            f.write(sim.jobs[0] + "\n")
        full = stage("entry_id")(sim, jobs_file)
        out = os.path.join(WORK, "stage.ndjson")
        full_bytes = os.path.getsize(out)
        runs = []
        for _ in range(rounds):
            state = os.path.join(WORK, "stage-state")
            fresh(state, out)
            cmd = [os.path.join(BUILD, "apps", "export-items"), "run", "--base-url", sim.url,
                   "--jobs-file", jobs_file, "--state-dir", state, "--out", out,
                   "--ordering", "entry_id", "--quiet",
                   "--summary", os.path.join(WORK, "summary.json")]
            t0 = time.monotonic()
            p = subprocess.Popen(cmd, env=env_with_key(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            while p.poll() is None:
                if os.path.exists(out) and os.path.getsize(out) >= full_bytes // 2:
                    p.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.002)
            p.wait()
            killed_after = time.monotonic() - t0
            killed = p.returncode == -signal.SIGKILL
            if not killed:
                log("  recovery: the stage finished before it could be killed")
            at = os.path.getsize(out) / full_bytes
            t1 = time.monotonic()
            r = timed(cmd, env=env_with_key(), sim=sim)
            with open(os.path.join(WORK, "summary.json")) as f:
                summary = json.load(f)
            redelivered = sum(j.get("redelivered", 0) for j in summary.get("jobs", []))
            lines = count_lines(out)
            if lines != full["emitted"]:
                raise RuntimeError(f"recovery: {lines} lines after the restart, "
                                   f"{full['emitted']} uninterrupted")
            runs.append({"killed": killed, "killed_after_s": killed_after, "killed_at_fraction": at,
                         "restart_wall_s": time.monotonic() - t1, "restart_cpu_s": r["cpu_s"],
                         "restart_rss_kb": r["rss_kb"], "redelivered": redelivered,
                         "output_lines": lines})
            log(f"  recovery: killed at {at:.0%} after {killed_after:.2f} s; restart "
                f"{runs[-1]['restart_wall_s']:.2f} s; redelivered {redelivered}")
        return {"key": "recovery", "items": n, "uninterrupted_wall_s": full["wall_s"],
                "uninterrupted_emitted": full["emitted"],
                "uninterrupted_wall_s_scenario_median": uninterrupted_wall,
                "runs": runs,
                "restart_wall_s_median": statistics.median(x["restart_wall_s"] for x in runs),
                "total_wall_s_median": statistics.median(
                    x["restart_wall_s"] + x["killed_after_s"] for x in runs)}
    finally:
        sim.stop()


# --- write-back (issue 13): report --complete-jobs alone, and the whole loop ------------------

# The stand-in ERP step of the stage's loop: answers each line of the stage's output with its
# outcome (successful, exportedAt, externalId JE-<sequence>, externalUrl), the same fields the
# Python peer's write-back sends; string edits, ~0.2 s CPU per 100 k lines (a sed with a
# back-referencing regex took 1-2.4 s, more than `run` itself).
ERP_STANDIN = os.path.join(HERE, "peers", "erp_standin.py")
PUT_LATENCY = "items_put:latency=50ms@all"
WB_SETTINGS = [("loopback", None), ("50 ms per PUT", PUT_LATENCY)]


def load1():
    return round(os.getloadavg()[0], 2)


def sim_get(sim, path):
    import base64
    import urllib.request
    req = urllib.request.Request(sim.url + path, headers={
        "Authorization": "Basic " + base64.b64encode((API_KEY + ":").encode()).decode()})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def verify_write_back(sim, job, expected):
    """The simulator's view after a write-back: every in-scope item updated exactly once (to
    successful, nothing rejected), nothing else touched, and the job completed by exactly one
    accepted event (the simulator's per-job event counters)."""
    counters = sim_get(sim, f"/sim/export-jobs/{job}/item-updates")
    updates = counters["data"]
    once = sum(1 for u in updates
               if u["applied"] == 1 and u["rejected"] == 0 and u["status"] == "successful")
    status = sim_get(sim, f"/v3/export-jobs/{job}")["data"]["status"]
    events = counters.get("events", {})
    if (len(updates) != expected or once != expected or status != "completed"
            or events != {"completed": 1}):
        raise RuntimeError(f"write-back check failed for job {job}: {len(updates)} items "
                           f"updated ({once} exactly once to successful), {expected} expected; "
                           f"job {status}; events {events}")
    return {"items_updated": len(updates), "updated_once": once, "job_status": status,
            "completion_events": events.get("completed", 0)}


_wb_prepared = {}


def prepare_write_back(n):
    """One `run` of 1 job x n (entry_id) against a simulator without faults: the state
    directory every `report` measurement starts from (copied), the outcome file made from its
    output by ERP_STANDIN, and the number of in-scope items (what must be updated)."""
    if n in _wb_prepared:
        return _wb_prepared[n]
    sim = Simulator(BUILD, jobs=1, items=n)
    try:
        base, out = os.path.join(WORK, "wb-base-state"), os.path.join(WORK, "wb-base.ndjson")
        fresh(base, out)
        subprocess.run([os.path.join(BUILD, "apps", "export-items"), "run", "--base-url",
                        sim.url, "--job", sim.jobs[0], "--state-dir", base, "--out", out,
                        "--ordering", "entry_id", "--quiet",
                        "--summary", os.path.join(WORK, "wb-base-summary.json")],
                       env=env_with_key(), check=True, capture_output=True)
        outcomes = os.path.join(WORK, "wb-outcomes.ndjson")
        with open(out) as fin, open(outcomes, "w") as f:
            subprocess.run([PYTHON, ERP_STANDIN], stdin=fin, stdout=f, check=True)
        expected = count_lines(out)
        with open(outcomes) as f:
            answered = sum(1 for line in f if '"status":"successful"' in line)
        if answered != expected:
            raise RuntimeError(f"ERP stand-in answered {answered} of {expected} lines")
        _wb_prepared[n] = {"state": base, "outcomes": outcomes, "expected": expected,
                           "job": sim.jobs[0]}
        return _wb_prepared[n]
    finally:
        sim.stop()


def wb_config(max_connections):
    path = os.path.join(WORK, f"http-{max_connections}.json")
    with open(path, "w") as f:
        json.dump({"http": {"max_connections": max_connections}}, f)
    return path


def report_only(in_flight, config=None):
    """`export-items report --outcomes FILE --complete-jobs` on a copy of the prepared state."""
    def run(sim, prep):
        state, summary = os.path.join(WORK, "wb-state"), os.path.join(WORK, "wb-summary.json")
        fresh(state, summary)
        shutil.copytree(prep["state"], state)
        cmd = [os.path.join(BUILD, "apps", "export-items"), "report", "--base-url", sim.url,
               "--state-dir", state, "--outcomes", prep["outcomes"], "--complete-jobs",
               "--in-flight", str(in_flight), "--summary", summary]
        if config:
            cmd += ["--config", config]
        r = timed(cmd, env=env_with_key(), sim=sim)
        with open(summary) as f:
            j = json.load(f)["jobs"][0]
        r.update(reported=j["reported"], puts=j["requests"], completion=j["completion"])
        return r
    return run


def stage_loop(in_flight, config=None):
    """The README's loop: run --out - | ERP stand-in | report --outcomes - --complete-jobs."""
    def run(sim, prep):
        state = os.path.join(WORK, "loop-state")
        rs, ws = os.path.join(WORK, "loop-run.json"), os.path.join(WORK, "loop-report.json")
        fresh(state, rs, ws)
        ei = os.path.join(BUILD, "apps", "export-items")
        q = lambda s: "'" + s.replace("'", "'\\''") + "'"  # noqa: E731
        script = (f"set -o pipefail; {q(ei)} run --base-url {sim.url} --job {sim.jobs[0]} "
                  f"--state-dir {q(state)} --out - --ordering entry_id --quiet --summary {q(rs)}"
                  f" | {PYTHON} {q(ERP_STANDIN)} | {q(ei)} report --base-url {sim.url} "
                  f"--state-dir {q(state)} --outcomes - --complete-jobs --in-flight {in_flight} "
                  f"--summary {q(ws)}" + (f" --config {q(config)}" if config else ""))
        r = timed(["bash", "-c", script], env=env_with_key(), sim=sim)
        with open(rs) as f:
            run_requests = json.load(f)["totals"]["httpRequests"]
        with open(ws) as f:
            j = json.load(f)["jobs"][0]
        r.update(reported=j["reported"], puts=j["requests"], completion=j["completion"],
                 requests=run_requests + j["requests"])
        return r
    return run


def peer_loop(in_flight):
    """The Python peer doing the same: parallel offset listing (16 threads, as the stage lists),
    NDJSON out, then its write-back (PUT batches of 100, in_flight threads, the event)."""
    def run(sim, prep):
        state, out = os.path.join(WORK, "py-loop.db"), os.path.join(WORK, "py-loop.ndjson")
        fresh(state, out)
        cmd = [PYTHON, os.path.join(HERE, "peers", "export_items.py"), "--base-url", sim.url,
               "--job", sim.jobs[0], "--state", state, "--out", out, "--ordering", "entry_id",
               "--listing", "parallel", "--concurrency", "16", "--write-back", "--in-flight",
               str(in_flight)]
        r = timed(cmd, env=env_with_key(), sim=sim)
        s = json.loads(r["stdout"])
        wb = s["writeBack"][0]
        r.update(reported=wb["updated"], puts=wb["puts"], completion=wb["event"],
                 requests=s["requests"])
        return r
    return run


def summarise_wb(name, in_flight, runs):
    walls = [r["wall_s"] for r in runs]
    ips = [r["reported"] / r["wall_s"] for r in runs]
    return {
        "contender": name, "in_flight": in_flight, "rounds": len(runs),
        "items": runs[-1]["reported"],
        "items_per_s": {"median": statistics.median(ips), "min": min(ips), "max": max(ips)},
        "wall_s": {"median": statistics.median(walls), "min": min(walls), "max": max(walls)},
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "rss_mib": max(r["rss_kb"] for r in runs) / 1024.0,
        "sim_cpu_s": statistics.median(r["sim_cpu_s"] for r in runs),
        "puts": runs[-1]["puts"], "requests": runs[-1].get("requests"),
        "load1": {"median": statistics.median(r["load1"] for r in runs),
                  "max": max(r["load1"] for r in runs)},
        "runs": [{k: v for k, v in r.items() if k != "stdout"} for r in runs],
    }


def wb_scenario(key, title, n, contenders, rounds):
    """contenders: (name, in_flight, fn). For each setting (loopback, 50 ms per PUT), rounds
    of every contender interleaved, each against a fresh simulator (same seed, so the same
    job and items as the prepared state) and checked against the simulator afterwards."""
    prep = prepare_write_back(n)
    out = []
    for setting, faults in WB_SETTINGS:
        log(f"scenario {key} ({setting}): {title}")
        data = {name: [] for name, _, _ in contenders}
        for r in range(rounds):
            for name, in_flight, fn in contenders:
                sim = Simulator(BUILD, jobs=1, items=n, faults=faults)
                try:
                    if sim.jobs[0] != prep["job"]:
                        raise RuntimeError("the simulator generated another job than prepared")
                    load = load1()
                    rec = fn(sim, prep)
                    rec["load1"] = load
                    if rec["reported"] != prep["expected"] or rec["completion"] != "completed":
                        raise RuntimeError(f"{name}: reported {rec['reported']} of "
                                           f"{prep['expected']}, completion {rec['completion']}")
                    rec["check"] = verify_write_back(sim, prep["job"], prep["expected"])
                finally:
                    sim.stop()
                data[name].append(rec)
                log(f"  {key} {setting} round {r + 1} {name}: {rec['wall_s']:.2f} s, "
                    f"{rec['reported'] / rec['wall_s']:,.0f} items/s, {rec['puts']} PUTs, "
                    f"cpu {rec['cpu_s']:.2f} s, rss {rec['rss_kb'] / 1024:.0f} MiB, load {load}")
        out.append({"key": f"{key}-{'latency' if faults else 'loopback'}", "setting": setting,
                    "faults": faults, "title": title, "items": n,
                    "in_scope": prep["expected"],
                    "contenders": [summarise_wb(name, f, data[name])
                                   for name, f, _ in contenders if data[name]]})
    return out


def write_back_scenarios(sizes, rounds, have_py, which):
    n = sizes["writeback"]
    conns16 = wb_config(16)
    res = {"meta": {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                    "load1_before": load1()}}
    if "writeback" in which:
        res["throughput"] = wb_scenario(
            "writeback", f"report --outcomes FILE --complete-jobs, 1 job x {n:,}", n,
            [("report (shipped: --in-flight 4)", 4, report_only(4)),
             ("report --in-flight 16", 16, report_only(16)),
             ("report --in-flight 16, http.max_connections 16", 16,
              report_only(16, conns16))], rounds)
    if "loop" in which:
        c = [("stage loop (report --in-flight 4)", 4, stage_loop(4))]
        if have_py:
            c.append(("python peer (4 PUTs in flight)", 4, peer_loop(4)))
        c.append(("stage loop (report --in-flight 16, http.max_connections 16)", 16,
                  stage_loop(16, conns16)))
        if have_py:
            c.append(("python peer (16 PUTs in flight)", 16, peer_loop(16)))
        res["loop"] = wb_scenario(
            "loop", f"run -> outcomes -> report --complete-jobs, 1 job x {n:,}", n, c, rounds)
    res["meta"]["load1_after"] = load1()
    return res


# --- many jobs (issue 14) ---------------------------------------------------------------------

def heavy_tailed_config(n_jobs, companies, big_jobs, big_items, seed=14):
    """A simulator config of n_jobs jobs whose sizes are heavy-tailed: log-normal around 8
    items (most under 50, a few hundred at most) plus `big_jobs` jobs of `big_items`."""
    import random
    rnd = random.Random(seed)
    sizes = [max(1, min(5000, int(rnd.lognormvariate(2.08, 1.2)))) for _ in range(n_jobs - big_jobs)]
    sizes += [big_items] * big_jobs
    rnd.shuffle(sizes)
    company = lambda i: "00000000-0000-4000-8000-%012x" % (1 + i % companies)  # noqa: E731
    cfg = {"jobs": 0, "expires_in_seconds": 0, "all_in_progress": True,
           "extra_jobs": [{"company_id": company(i), "items": n} for i, n in enumerate(sizes)]}
    path = os.path.join(WORK, f"heavy-{n_jobs}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path, sizes


def request_log_path(key):
    """Where a batch's simulator writes its request log: tmpfs when there is one (tens of MB
    at 100,000 jobs, kept off the disk the stage fsyncs on), else the work dir."""
    shm = "/dev/shm"
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else WORK
    return os.path.join(base, f"ei-bench-requests-{os.getpid()}-{key}.ndjson")


def company_rule(path, n_jobs, what):
    """The one-job-per-company rule, checked on the simulator's request log as
    tests/pipeline/many_jobs_test.cpp checks it on the in-process one: per company, the windows
    [first items request received, last items request finished] of its jobs never overlap
    (sorted by start, each window against the latest end so far). Every job must have been
    listed. Raises, naming the first overlaps, when the rule was broken."""
    windows = {}  # company -> job -> [first received, last finished]
    requests = 0
    with open(path) as f:
        for line in f:
            requests += 1
            if '"endpoint":"items"' not in line:  # GET .../items only (not items_put)
                continue
            r = json.loads(line)
            c, j = r["companyId"], r["jobId"]
            if c is None or j is None:
                continue
            w = windows.setdefault(c, {}).get(j)
            if w is None:
                windows[c][j] = [r["receivedUs"], r["finishedUs"]]
            else:
                w[0], w[1] = min(w[0], r["receivedUs"]), max(w[1], r["finishedUs"])
    overlaps = []
    for c, jobs in windows.items():
        end, end_job = None, None
        for j, (a, b) in sorted(jobs.items(), key=lambda kv: kv[1][0]):
            if end is not None and end > a:
                overlaps.append(f"company {c}: job {j} listed from {a} us while job {end_job} "
                                f"was until {end} us")
            if end is None or b > end:
                end, end_job = b, j
    listed = sum(len(v) for v in windows.values())
    if overlaps:
        raise RuntimeError(f"{what}: the one-job-per-company rule was broken {len(overlaps)} "
                           f"times (simulator request log {path}): " + "; ".join(overlaps[:3]))
    if listed != n_jobs:
        raise RuntimeError(f"{what}: the simulator's request log lists {listed} of {n_jobs} "
                           f"jobs ({path}, {requests} requests)")
    rule = {"companies": len(windows), "jobs": listed, "requests": requests, "overlaps": 0}
    log(f"  per-company rule: 0 overlaps over {len(windows):,} companies ({listed:,} jobs, "
        f"{requests:,} requests in the simulator's log)")
    return rule


def logged_stage_batch(sim_kw, key, what, n_jobs):
    """The stage on a batch against a simulator that writes its request log; the log is read
    once the simulator has stopped and the per-company rule checked on it. Returns the run's
    record and the rule's figures."""
    path = request_log_path(key)
    sim = Simulator(BUILD, request_log=path, **sim_kw)
    try:
        jobs_file = os.path.join(WORK, f"jobs-{key}.txt")
        with open(jobs_file, "w") as f:
            f.write("\n".join(sim.jobs) + "\n")
        r = stage_batch(sim, jobs_file)
        sim.stop()
        rule = company_rule(path, n_jobs, what)
        return sim, r, rule
    finally:
        sim.stop()
        if os.path.exists(path):
            os.remove(path)


def stage_batch(sim, jobs_file, timeout=1800):
    """The stage as shipped (defaults: --max-jobs 64, max_window_items) on a jobs file; the
    summary is read back and checked: every job complete."""
    state, out = os.path.join(WORK, "stage-state"), os.path.join(WORK, "stage.ndjson")
    summary = os.path.join(WORK, "summary.json")
    fresh(state, out)
    cmd = [os.path.join(BUILD, "apps", "export-items"), "run", "--base-url", sim.url,
           "--jobs-file", jobs_file, "--state-dir", state, "--out", out, "--ordering",
           "entry_id", "--quiet", "--summary", summary]
    r = timed(cmd, env=env_with_key(), sim=sim, timeout=timeout)
    with open(summary) as f:
        totals = json.load(f)["totals"]
    r["jobs_complete"] = totals["complete"]
    r["jobs_failed"] = totals["failed"]
    r["emitted"] = count_lines(out)
    if totals["emitted"] != r["emitted"]:
        raise RuntimeError(f"stage: summary says {totals['emitted']} items, output has "
                           f"{r['emitted']}")
    r.pop("stdout", None)
    return r


def peer_batch(sim, jobs_file, timeout=1800):
    state, out = os.path.join(WORK, "py.db"), os.path.join(WORK, "py.ndjson")
    fresh(state, out)
    cmd = [PYTHON, os.path.join(HERE, "peers", "export_items.py"), "--base-url", sim.url,
           "--jobs-file", jobs_file, "--state", state, "--out", out, "--ordering", "entry_id",
           "--listing", "cursor"]
    r = timed(cmd, env=env_with_key(), sim=sim, timeout=timeout)
    r["emitted"] = count_lines(out)
    r.pop("stdout", None)
    return r


def batch_record(name, n_jobs, items, r):
    r.update({"contender": name, "jobs": n_jobs, "items": items,
              "jobs_per_s": n_jobs / r["wall_s"], "items_per_s": items / r["wall_s"],
              "rss_mib": r["rss_kb"] / 1024.0, "load1": load1()})
    log(f"  {name}: {n_jobs:,} jobs in {r['wall_s']:.1f} s = {r['jobs_per_s']:,.0f} jobs/s, "
        f"cpu {r['cpu_s']:.1f} s, sim cpu {r['sim_cpu_s']:.1f} s, rss {r['rss_mib']:.0f} MiB, "
        f"{r['emitted']:,} lines")
    return r


def scale_scenarios(sizes, have_py):
    """issue 14: many small jobs in one run. RSS against the number of jobs (x 10 items, 10
    jobs per company), the 100k x 10 batch with the Python peer on a slice of it, and a
    heavy-tailed batch with the peer on all of it."""
    res = {"meta": {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                    "load1_before": load1()}, "rss_vs_jobs": [], "batches": []}
    for n in sizes["scale_points"]:
        log(f"scenario scale: {n:,} jobs x 10 items, {max(1, n // 10):,} companies")
        sim_kw = dict(jobs=n, items=10, companies=max(1, n // 10))
        if n == max(sizes["scale_points"]):
            # The batch: the stage's run against a simulator writing its request log, checked
            # for the per-company rule (the peer then gets a fresh simulator: same data).
            sim, r, rule = logged_stage_batch(sim_kw, f"scale-{n}", f"scale {n}", n)
            items = sum(j["numberOfItems"] for j in sim.job_list)
            r = batch_record("stage", n, items, r)
        else:
            sim, rule = Simulator(BUILD, **sim_kw), None
            try:
                jobs_file = os.path.join(WORK, f"jobs-scale-{n}.txt")
                with open(jobs_file, "w") as f:
                    f.write("\n".join(sim.jobs) + "\n")
                items = sum(j["numberOfItems"] for j in sim.job_list)
                r = batch_record("stage", n, items, stage_batch(sim, jobs_file))
            finally:
                sim.stop()
        if r["jobs_complete"] != n:
            raise RuntimeError(f"scale {n}: {r['jobs_complete']} of {n} jobs complete")
        res["rss_vs_jobs"].append(r)
        if rule is None:
            continue
        batch = {"key": f"scale-{n}", "title": f"{n:,} jobs x 10 items, "
                 f"{max(1, n // 10):,} companies", "contenders": [r], "company_rule": rule}
        if have_py:
            # The peer runs jobs one after another: a slice of the same batch keeps the
            # measurement within minutes; its jobs/s is over that slice.
            sim = Simulator(BUILD, **sim_kw)
            try:
                k = sizes["scale_peer_slice"]
                slice_file = os.path.join(WORK, f"jobs-scale-{n}-slice.txt")
                with open(slice_file, "w") as f:
                    f.write("\n".join(sim.jobs[:k]) + "\n")
                its = sum(j["numberOfItems"] for j in sim.job_list[:k])
                p = batch_record(f"python peer (first {k:,} jobs of the batch)", k, its,
                                 peer_batch(sim, slice_file))
                batch["contenders"].append(p)
            finally:
                sim.stop()
        res["batches"].append(batch)
    n, big, big_items = sizes["heavy_jobs"], sizes["heavy_big"], sizes["heavy_big_items"]
    log(f"scenario heavy-tailed: {n:,} jobs, {big} of {big_items:,} items")
    cfg, job_sizes = heavy_tailed_config(n, max(1, n // 10), big, big_items)
    sim_kw = dict(jobs=0, items=0, config=cfg)
    _, r, rule = logged_stage_batch(sim_kw, "heavy-tailed", "heavy-tailed", n)
    items = sum(job_sizes)
    srt = sorted(job_sizes)
    batch = {"key": "heavy-tailed", "title": f"{n:,} jobs, heavy-tailed sizes (median "
             f"{srt[len(srt) // 2]}, 90th pct {srt[len(srt) * 9 // 10]}, "
             f"{sum(1 for x in job_sizes if x < 50) / n:.0%} under 50, {big} of "
             f"{big_items:,}; {items:,} items)", "contenders": [], "company_rule": rule}
    r = batch_record("stage", n, items, r)
    if r["jobs_complete"] != n:
        raise RuntimeError(f"heavy-tailed: {r['jobs_complete']} of {n} jobs complete")
    batch["contenders"].append(r)
    if have_py:
        sim = Simulator(BUILD, **sim_kw)  # the peer's: a fresh one, same data
        try:
            jobs_file = os.path.join(WORK, "jobs-heavy.txt")
            with open(jobs_file, "w") as f:
                f.write("\n".join(sim.jobs) + "\n")
            k = min(n, sizes["heavy_peer_slice"])
            if k == n:
                p = batch_record("python peer", n, items, peer_batch(sim, jobs_file))
                if p["emitted"] != r["emitted"]:
                    raise RuntimeError(f"heavy-tailed: stage wrote {r['emitted']} lines, the "
                                       f"peer {p['emitted']}")
            else:  # the peer runs jobs one after another: a slice of the same batch
                slice_file = os.path.join(WORK, "jobs-heavy-slice.txt")
                with open(slice_file, "w") as f:
                    f.write("\n".join(sim.jobs[:k]) + "\n")
                p = batch_record(f"python peer (first {k:,} jobs of the batch)", k,
                                 sum(job_sizes[:k]), peer_batch(sim, slice_file))
            batch["contenders"].append(p)
        finally:
            sim.stop()
    res["batches"].append(batch)
    res["meta"]["load1_after"] = load1()
    return res


def markdown_scale(sc):
    if not sc:
        return []
    m = sc["meta"]
    lines = ["", "## Many jobs in one run (issue 14)", "",
             f"Measured {m['date']} at commit `{m.get('commit', '?')}`, 1-minute load average "
             f"{m['load1_before']} before and {m['load1_after']} after (other sessions were "
             "building on the same 2 cores). The stage as shipped (`--max-jobs` 64, "
             "`max_window_items` 65,536, `state.sync = commits`), `entry_id`, one round each; "
             "every run's summary checked (every job complete, its item count equal to the "
             "output's lines). Jobs/s = jobs / wall time of the whole process.", "",
             "| batch | contender | jobs | wall s | jobs/s | items/s | CPU s | sim CPU s | "
             "peak RSS MiB | lines |", "|---|---|---|---|---|---|---|---|---|---|"]
    for b in sc["batches"]:
        for c in b["contenders"]:
            lines.append(f"| {b['title']} | {c['contender']} | {c['jobs']:,} | "
                         f"{c['wall_s']:.1f} | **{c['jobs_per_s']:,.0f}** | "
                         f"{fmt_rate(c['items_per_s'])} | {c['cpu_s']:.1f} | "
                         f"{c['sim_cpu_s']:.1f} | {c['rss_mib']:.1f} | {c['emitted']:,} |")
    rules = [(b, b["company_rule"]) for b in sc["batches"] if b.get("company_rule")]
    if rules:
        lines += ["", "One job per company at a time, checked on the stage's runs from the "
                  "simulator's request log (`export-items-sim --request-log`: per company, the "
                  "windows [first items request received, last finished] of its jobs never "
                  "overlap, as `tests/pipeline/many_jobs_test.cpp` checks in-process):", ""]
        for b, rule in rules:
            lines.append(f"- {b['title']}: per-company rule: checked in the simulator's request "
                         f"log, {rule['overlaps']} overlaps over {rule['companies']:,} companies "
                         f"({rule['jobs']:,} jobs, {rule['requests']:,} requests)")
    lines += ["", "Peak RSS against the number of jobs (10 items each, 10 jobs per company; "
              "`rss_jobs.png`):", "", "| jobs | wall s | jobs/s | CPU s per 1,000 jobs | "
              "peak RSS MiB |", "|---|---|---|---|---|"]
    for r in sc["rss_vs_jobs"]:
        lines.append(f"| {r['jobs']:,} | {r['wall_s']:.1f} | {r['jobs_per_s']:,.0f} | "
                     f"{r['cpu_s'] / r['jobs'] * 1000:.2f} | {r['rss_mib']:.1f} |")
    return lines


def plot_scale(sc, out_dir):
    if not sc or not sc["rss_vs_jobs"] or shutil.which("gnuplot") is None:
        return
    dat = os.path.join(WORK, "plot")
    os.makedirs(dat, exist_ok=True)
    with open(os.path.join(dat, "rss_jobs.dat"), "w") as f:
        for r in sc["rss_vs_jobs"]:
            f.write(f"{r['jobs']} {r['rss_mib']:.1f}\n")
    script = ["set terminal pngcairo size 900,600 font 'sans,10'",
              f"set output '{os.path.join(out_dir, 'rss_jobs.png')}'",
              "set title 'peak RSS vs number of jobs (10 items each, one run)'",
              "set logscale x", "set grid", "set xlabel 'jobs in the batch'",
              "set ylabel 'peak RSS, MiB'", "set yrange [0:*]",
              "set arrow from graph 0, first 64 to graph 1, first 64 nohead dt 2 lc rgb 'red'",
              f"plot '{dat}/rss_jobs.dat' using 1:2 with linespoints lw 2 title 'stage'",
              "set output"]
    with open(os.path.join(dat, "rss_jobs.gp"), "w") as f:
        f.write("\n".join(script) + "\n")
    subprocess.run(["gnuplot", os.path.join(dat, "rss_jobs.gp")], check=True)


# --- report ------------------------------------------------------------------------------------

def find(results, key, contender_prefix):
    for s in results["scenarios"]:
        if s["key"] == key:
            for c in s["contenders"]:
                if c["contender"].startswith(contender_prefix):
                    return c
    return None


def targets(results):
    t = []
    big = results["sizes"]["big"]
    st = find(results, "1job-big-entry_id", "stage")
    py = find(results, "1job-big-entry_id", "python peer")
    wi = find(results, "1job-big-entry_id", "wire client (cursor")
    wo = find(results, "1job-big-entry_id", "wire client offset")
    if st:
        v = st["items_per_s"]["median"]
        t.append({"target": f"stage, 1 job x {big:,}, durable: >= 1,000,000 items/s",
                  "value": f"{v:,.0f} items/s", "met": v >= 1e6})
        if py:
            ratio = v / py["items_per_s"]["median"]
            t.append({"target": "stage >= 5x the Python peer (same job)",
                      "value": f"{ratio:.1f}x", "met": ratio >= 5})
        comps = {}
        if wi:
            comps["wire (1 connection, cursor)"] = wi["items_per_s"]["median"]
        # What the stage runs: the HTTP client's padded bodies, parsed in place (results
        # from before the in-place parser have only the copying decoder).
        p = results["ceilings"]["parse"]
        parse = p.get("job_items_simdjson_in_place", p["job_items_simdjson"])["median"]
        comps["parse (simdjson job_items)"] = parse
        comps["state writes (commit_page, commits)"] = \
            results["ceilings"]["storage"]["commit_page_commits"]["median"]
        slowest = min(comps, key=comps.get)
        frac = v / comps[slowest]
        t.append({"target": ">= 0.5 of the slowest component ceiling",
                  "value": f"{frac:.2f} of {slowest} ({comps[slowest]:,.0f} items/s)",
                  "met": frac >= 0.5})
        if wo:
            # The same with the wire measured the way the stage lists (offset pages, 16 in
            # flight) instead of one cursor connection.
            comps.pop("wire (1 connection, cursor)", None)
            comps["wire (offset x16)"] = wo["items_per_s"]["median"]
            slowest = min(comps, key=comps.get)
            frac = v / comps[slowest]
            t.append({"target": ">= 0.5 of the slowest component ceiling, wire as the stage "
                                "lists (offset x16)",
                      "value": f"{frac:.2f} of {slowest} ({comps[slowest]:,.0f} items/s)",
                      "met": frac >= 0.5})
    mj = find(results, "many-jobs", "stage")
    if mj:
        v = mj["items_per_s"]["median"]
        t.append({"target": "1,000 jobs x 1,000 items: >= 500 k items/s", "value":
                  f"{v:,.0f} items/s", "met": v >= 5e5})
    rss = [c["rss_mib"] for s in results["scenarios"] for c in s["contenders"]
           if c["contender"].startswith("stage")]
    # The restarts of the recovery scenario (reconciling a resumed job) count too.
    rss += [r["restart_rss_kb"] / 1024 for r in results.get("recovery", {}).get("runs", [])]
    if rss:
        t.append({"target": "peak RSS <= 64 MiB (every stage run)",
                  "value": f"max {max(rss):.1f} MiB", "met": max(rss) <= 64})
    small = find(results, "1job-small-entry_id", "stage")
    if st and small:
        t.append({"target": f"RSS at {big:,} no larger than at {results['sizes']['small']:,}",
                  "value": f"{st['rss_mib']:.1f} vs {small['rss_mib']:.1f} MiB",
                  "met": st["rss_mib"] <= small["rss_mib"] * 1.05})
    sc = results.get("scale")
    if sc:
        big = next((b for b in sc["batches"] if b["key"].startswith("scale-")), None)
        if big:
            st = big["contenders"][0]
            t.append({"target": f"{st['jobs']:,} jobs x 10 items: >= 5,000 jobs/s (issue 14)",
                      "value": f"{st['jobs_per_s']:,.0f} jobs/s", "met": st["jobs_per_s"] >= 5000})
        for b in sc["batches"]:
            st = b["contenders"][0]
            t.append({"target": f"peak RSS <= 64 MiB, {b['key']} (issue 14)",
                      "value": f"{st['rss_mib']:.1f} MiB", "met": st["rss_mib"] <= 64})
        for b in sc["batches"]:
            rule = b.get("company_rule")
            if rule:
                t.append({"target": f"one job per company at a time, {b['key']} (issue 14)",
                          "value": f"{rule['overlaps']} overlaps over {rule['companies']:,} "
                                   "companies (simulator's request log)",
                          "met": rule["overlaps"] == 0})
    seq = find(results, "latency", "stage cursor")
    for prefix in ("stage parallel (shipped", "stage parallel (32"):
        par = find(results, "latency", prefix)
        if seq and par:
            sp = seq["wall_s"]["median"] / par["wall_s"]["median"]
            t.append({"target": f"latency 50 ms: parallel >= 8x sequential ({par['contender']})",
                      "value": f"{sp:.1f}x", "met": sp >= 8})
    return t


def fmt_rate(x):
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.0f} k"


def markdown(results):
    m = results["meta"]
    lines = [f"# Load benchmark results ({m['date']})", "",
             f"Commit `{m['commit']}`, {m['machine']}. {m['note']}",
             f"Disk: a 4 KiB write + fsync took {m.get('fsync_ms_before')} ms (median) before "
             f"the run and {m.get('fsync_ms_after')} ms after; measuring took "
             f"{m.get('harness_seconds', 0):.0f} s.", "",
             "Items/s = items of the job(s) listed from the API / wall time of the whole "
             "process (start-up and shutdown included); median of the rounds with [min–max]. "
             "CPU = user + sys seconds of the contender (median); RSS = peak resident set "
             "(max over rounds); sim CPU = the simulator's CPU seconds during the run.", ""]
    for u in m.get("updates", []):
        lines[4:4] = [f"Re-measured {u['date']} at `{u['commit']}` with `--only`: "
                      f"{', '.join(u['what'])} (those sections say so); the rest is from the run "
                      f"above, at `{m['commit']}`."]
    lines += ["## Component ceilings", "", "| component | median | range |", "|---|---|---|"]
    p = results["ceilings"]["parse"]
    for k in ("job_items_simdjson_in_place", "job_items_simdjson", "job_items_nlohmann",
              "item_dates_simdjson_in_place", "item_dates_simdjson", "item_dates_nlohmann"):
        if k in p:
            lines.append(f"| parse `{k}` (items/s) | {fmt_rate(p[k]['median'])} | "
                         f"{fmt_rate(p[k]['min'])} – {fmt_rate(p[k]['max'])} |")
    for k, v in results["ceilings"]["storage"].items():
        unit = "items/s" if k.startswith("commit_page") else "commits/s"
        lines.append(f"| storage `{k}` ({unit}) | {fmt_rate(v['median'])} | "
                     f"{fmt_rate(v['min'])} – {fmt_rate(v['max'])} |")
    lines += ["", "## Scenarios", "",
              "| scenario | contender | rounds | items/s [min–max] | wall s | CPU s | "
              "peak RSS MiB | sim CPU s | emitted |",
              "|---|---|---|---|---|---|---|---|---|"]
    for s in results["scenarios"]:
        for c in s["contenders"]:
            ips = c["items_per_s"]
            lines.append(
                f"| {s['title']} | {c['contender']} | {c['rounds']} | "
                f"**{fmt_rate(ips['median'])}** [{fmt_rate(ips['min'])}–{fmt_rate(ips['max'])}]"
                f" | {c['wall_s']['median']:.2f} | {c['cpu_s']:.2f} | {c['rss_mib']:.1f} | "
                f"{c['sim_cpu_s']:.2f} | {c['emitted'] if c['emitted'] is not None else '–'} |")
    rec = results.get("recovery")
    if rec:
        lines += ["", "## Recovery cost", "",
                  f"1 job × {rec['items']:,} items, entry_id, SIGKILL at ~50 % of dispatch "
                  "(output bytes against an uninterrupted run).", "",
                  "| run | killed at | killed after s | restart → finish s | restart peak RSS MiB "
                  "| redelivered | output lines |", "|---|---|---|---|---|---|---|"]
        lines.append(f"| uninterrupted | – | – | {rec['uninterrupted_wall_s']:.2f} | – | 0 | "
                     f"{rec['uninterrupted_emitted']} |")
        for i, r in enumerate(rec["runs"]):
            lines.append(f"| killed #{i + 1} | {r['killed_at_fraction']:.0%} | "
                         f"{r['killed_after_s']:.2f} | {r['restart_wall_s']:.2f} | "
                         f"{r['restart_rss_kb'] / 1024:.1f} | "
                         f"{r['redelivered']} | {r['output_lines']} |")
    lines += markdown_write_back(results.get("write_back"))
    lines += markdown_scale(results.get("scale"))
    lines += ["", "## Targets (issue 5)", "", "| target | measured | met |", "|---|---|---|"]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |")
    lines += ["", "Plots: `items_per_s.png`, `rss.png`, `latency.png` beside this file; "
              "analysis and what bounds each figure: `../README.md`.", ""]
    return "\n".join(lines)


def markdown_write_back(wb):
    if not wb:
        return []
    m = wb["meta"]
    loads = [c["load1"]["max"] for part in ("throughput", "loop") for s in wb.get(part, [])
             for c in s["contenders"]]
    lines = ["", "## Write-back and the whole loop (issue 13)", "",
             f"Measured {m['date']} at commit `{m['commit']}`. 1-minute load average "
             f"{m['load1_before']} before, {m['load1_after']} after, at most "
             f"{max(loads) if loads else '–'} at the start of a run (per-run loads in "
             "`latest.json`; the previous run's contender and simulator on 2 cores alone keep "
             "it near 1.5). Every run has a fresh simulator (same seed: the job and items of "
             "the prepared state) and is checked against it afterwards: every in-scope item "
             "updated exactly once to `successful`, none rejected, nothing else touched, the "
             "job `completed` (a second completion would be a 422, so one event; the binary "
             "does not serve its per-job event counters). 50 ms = "
             f"`--faults '{PUT_LATENCY}'` (the PUT endpoint only). Medians [min–max] over the "
             "rounds, contenders interleaved.", ""]
    thr = wb.get("throughput")
    if thr:
        lines += ["### `report --outcomes FILE --complete-jobs` alone", "",
                  "The state directory of one `run` (1 job, entry_id) copied per measurement; "
                  "outcomes from its output by the ERP stand-in (`peers/erp_standin.py`). "
                  "Items/s = items written back / wall time of `report` (reading and recording "
                  "the outcomes, the PUTs of 100, the job re-read and the event).", "",
                  "| setting | contender | in flight | rounds | items/s [min–max] | wall s | "
                  "CPU s | peak RSS MiB | sim CPU s | PUTs | checked |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in thr:
            for c in s["contenders"]:
                ips = c["items_per_s"]
                lines.append(
                    f"| {s['setting']}, {s['in_scope']:,} of {s['items']:,} items | "
                    f"{c['contender']} | {c['in_flight']} | {c['rounds']} | "
                    f"**{fmt_rate(ips['median'])}** [{fmt_rate(ips['min'])}–"
                    f"{fmt_rate(ips['max'])}] | {c['wall_s']['median']:.2f} | {c['cpu_s']:.2f} | "
                    f"{c['rss_mib']:.1f} | {c['sim_cpu_s']:.2f} | {c['puts']} | "
                    f"{c['runs'][-1]['check']['updated_once']:,} once, "
                    f"{c['runs'][-1]['check']['job_status']} |")
    loop = wb.get("loop")
    if loop:
        lines += ["", "### The whole loop: `run` → outcomes → `report --complete-jobs`", "",
                  "Stage: `run --out - --ordering entry_id | peers/erp_standin.py | report "
                  "--outcomes - --complete-jobs` (README, \"Closing the loop\"), one shell "
                  "pipeline timed end to end (CPU: all three; peak RSS: the largest process). "
                  "Python peer (`peers/export_items.py --listing parallel --concurrency 16 "
                  "--write-back`): parallel offset listing with 16 threads, SQLite per page, "
                  "NDJSON out (fsynced), then the same outcomes recorded in SQLite, PUT in "
                  "batches of 100 with the same number in flight (a thread and session each), "
                  "each answer recorded, the event. Requests = the HTTP requests of the listing "
                  "(with `run`'s job read) and the PUTs; not counted: `report`'s job re-read "
                  "and event, the peer's event.", "",
                  "| setting | contender | in flight | rounds | wall s [min–max] | items/s | "
                  "CPU s | peak RSS MiB | requests (PUTs) | peer wall ÷ stage wall | checked |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in loop:
            peers = {c["in_flight"]: c for c in s["contenders"]
                     if c["contender"].startswith("python")}
            for c in s["contenders"]:
                w = c["wall_s"]
                vs = "–"
                if c["contender"].startswith("stage") and c["in_flight"] in peers:
                    vs = (f"{peers[c['in_flight']]['wall_s']['median'] / w['median']:.1f}x")
                lines.append(
                    f"| {s['setting']}, {s['in_scope']:,} of {s['items']:,} items | "
                    f"{c['contender']} | {c['in_flight']} | {c['rounds']} | "
                    f"**{w['median']:.2f}** [{w['min']:.2f}–{w['max']:.2f}] | "
                    f"{fmt_rate(c['items_per_s']['median'])} | {c['cpu_s']:.2f} | "
                    f"{c['rss_mib']:.1f} | {c['requests']} ({c['puts']}) | {vs} | "
                    f"{c['runs'][-1]['check']['updated_once']:,} once, "
                    f"{c['runs'][-1]['check']['job_status']} |")
    return lines


def plots(results, out_dir):
    if shutil.which("gnuplot") is None:
        log("gnuplot not found: no plots")
        return
    dat = os.path.join(WORK, "plot")
    os.makedirs(dat, exist_ok=True)
    # items/s per contender, one bar per (scenario, contender) except the latency scenario
    rows = [(f"{s['key']}: {c['contender']}", c["items_per_s"]["median"] / 1e3,
             c["items_per_s"]["min"] / 1e3, c["items_per_s"]["max"] / 1e3)
            for s in results["scenarios"] if s["key"] != "latency" for c in s["contenders"]]
    with open(os.path.join(dat, "ips.dat"), "w") as f:
        for i, (label, med, lo, hi) in enumerate(rows):
            f.write(f'{i} "{label}" {med:.1f} {lo:.1f} {hi:.1f}\n')
    rss = [(s["simulator"]["jobs"] * s["simulator"]["items"], c["rss_mib"], c["contender"])
           for s in results["scenarios"] if s["key"].startswith("1job")
           for c in s["contenders"] if not c["contender"].startswith("wire")]
    by = {}
    for size, r, name in rss:
        base = name.split(" (")[0]
        by.setdefault(base, {})
        by[base][size] = max(r, by[base].get(size, 0))
    with open(os.path.join(dat, "rss.dat"), "w") as f:
        for name, pts in by.items():
            f.write(f'# "{name}"\n')
            for size in sorted(pts):
                f.write(f"{size} {pts[size]:.1f}\n")
            f.write("\n\n")
    lat = next((s for s in results["scenarios"] if s["key"] == "latency"), None)
    script = [
        "set terminal pngcairo size 1200,700 font 'sans,9'",
        f"set output '{os.path.join(out_dir, 'items_per_s.png')}'",
        "set title 'items/s per contender (median, bars = min..max)'",
        "set style fill solid 0.6", "set boxwidth 0.7", "set grid ytics",
        "set ylabel 'thousand items/s'", "set xtics rotate by -60 font ',7' nomirror",
        "set bmargin 18", "set yrange [0:*]",
        f"plot '{dat}/ips.dat' using 1:3:xtic(2) with boxes notitle, "
        f"'' using 1:3:4:5 with yerrorbars lc rgb 'black' pt 0 notitle",
        "set output", "reset",
        "set terminal pngcairo size 900,600 font 'sans,10'",
        f"set output '{os.path.join(out_dir, 'rss.png')}'",
        "set title 'peak RSS vs job size (1 job)'", "set logscale x", "set grid",
        "set xlabel 'items in the job'", "set ylabel 'peak RSS, MiB'", "set yrange [0:*]",
        "set key top left",
        "plot " + ", ".join(f"'{dat}/rss.dat' index {i} using 1:2 with linespoints lw 2 "
                            f"title '{name}'" for i, name in enumerate(by)),
        "set output", "reset",
    ]
    if lat:
        seq = next(c for c in lat["contenders"] if c["contender"].startswith("stage cursor"))
        with open(os.path.join(dat, "lat.dat"), "w") as f:
            for i, c in enumerate(lat["contenders"]):
                f.write(f'{i} "{c["contender"]}" '
                        f'{seq["wall_s"]["median"] / c["wall_s"]["median"]:.2f}\n')
        script += [
            "set terminal pngcairo size 900,600 font 'sans,10'",
            f"set output '{os.path.join(out_dir, 'latency.png')}'",
            "set title 'latency-bound listing (50 ms per request): speed-up over the stage "
            "with cursor paging'", "set style fill solid 0.6", "set boxwidth 0.6",
            "set grid ytics", "set ylabel 'speed-up (x)'", "set yrange [0:*]",
            "set xtics rotate by -30 font ',8' nomirror", "set bmargin 10",
            "set arrow from graph 0, first 8 to graph 1, first 8 nohead dt 2 lc rgb 'red'",
            f"plot '{dat}/lat.dat' using 1:3:xtic(2) with boxes notitle, "
            f"'' using 1:3:(sprintf('%.1fx', $3)) with labels offset 0,1 notitle",
            "set output"]
    with open(os.path.join(dat, "plots.gp"), "w") as f:
        f.write("\n".join(script) + "\n")
    subprocess.run(["gnuplot", os.path.join(dat, "plots.gp")], check=True)


# --- main --------------------------------------------------------------------------------------

def _heading_level(line):
    """The level of a Markdown ATX heading (## x: 2), 0 for any other line."""
    n = len(line) - len(line.lstrip("#"))
    return n if 0 < n <= 6 and line[n:n + 1] == " " else 0


def _sections(md):
    """Yields (index, level, line) for the headings of `md`'s lines outside code fences."""
    fence = False
    for i, line in enumerate(md):
        if line.startswith("```"):
            fence = not fence
        elif not fence and _heading_level(line):
            yield i, _heading_level(line), line


def keep_hand_written(old_md, new_md):
    """Carries the sections of the previous latest.md whose heading says "written by hand"
    into the new one, unchanged: each goes to the end of the "## " section it sat in (by that
    heading's text), or before the appended parts (<!-- markers) when that section is gone.
    A section runs to the next heading of its level or above, or to a <!-- marker."""
    old, new = old_md.split("\n"), new_md.rstrip("\n").split("\n")
    heads = list(_sections(old))
    kept = []  # (parent "## " heading or None, lines)
    parent = None
    for n, (i, level, line) in enumerate(heads):
        if level <= 2:
            parent = line
        if "written by hand" not in line:
            continue
        end = next((j for j, lv, _ in heads[n + 1:] if lv <= level), len(old))
        end = next((k for k in range(i + 1, end) if old[k].startswith("<!--")), end)
        body = old[i:end]
        while body and not body[-1].strip():
            body.pop()
        kept.append((parent if level > 2 else None, body))
    present = {line for _, _, line in _sections(new)}
    for parent, body in kept:
        if body[0] in present:
            continue
        new_heads = list(_sections(new))
        at = next((k for k, line in enumerate(new) if line.startswith("<!--")), len(new))
        for n, (i, level, line) in enumerate(new_heads):
            if level == 2 and line == parent:
                at = next((j for j, lv, _ in new_heads[n + 1:] if lv <= 2), at)
                break
        while at > 0 and not new[at - 1].strip():
            at -= 1
        new[at:at] = [""] + body
    return "\n".join(new) + "\n"


def merge_results(previous, new):
    """An --only run on top of the last full one: its scenarios (by key), recovery and
    write-back sections replace the earlier ones; everything else stays as measured then, and
    the top meta says which parts are newer."""
    merged = dict(previous)
    keys = {s["key"] for s in new["scenarios"]}
    scen = [next((n for n in new["scenarios"] if n["key"] == s["key"]), s)
            for s in previous["scenarios"]]
    scen += [s for s in new["scenarios"] if s["key"] not in {p["key"] for p in scen}]
    merged["scenarios"] = scen
    merged["ceilings"] = new["ceilings"]
    for k in ("recovery", "write_back", "scale"):
        if k in new:
            merged[k] = new[k]
    if "write_back" in new and "write_back" in previous:
        for part in ("throughput", "loop"):
            if part not in new["write_back"] and part in previous["write_back"]:
                merged["write_back"][part] = previous["write_back"][part]
    meta = dict(previous["meta"])
    upd = list(meta.get("updates", []))
    upd.append({"date": new["meta"]["date"], "commit": new["meta"]["commit"],
                "harness_seconds": new["meta"]["harness_seconds"],
                "fsync_ms_before": new["meta"]["fsync_ms_before"],
                "fsync_ms_after": new["meta"]["fsync_ms_after"],
                "what": sorted(keys | ({"recovery", "scale"} & new.keys()) |
                               set(new.get("write_back", {}).keys()) - {"meta"})})
    meta["updates"] = upd
    merged["meta"] = meta
    return merged


def main():
    global BUILD, WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--results-dir")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--peer-slice", type=int, default=0,
                    help="scale: the Python peer runs this many jobs of each batch (0: as "
                         "sized: 10,000 of the 100,000 batch, all of the heavy-tailed one)")
    args = ap.parse_args()
    BUILD, WORK = os.path.abspath(args.build_dir), os.path.abspath(args.work_dir)
    os.makedirs(WORK, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    want = lambda k: not only or k in only  # noqa: E731
    if args.smoke:
        sizes = dict(smoke=True, small=2000, big=5000, jobs=20, job_items=200, companies=5,
                     latency=2000, recovery=20000, storage_pages=100, peer_rounds_big=1,
                     writeback=2000, scale_points=[50, 200], scale_peer_slice=20,
                     heavy_jobs=60, heavy_big=1, heavy_big_items=1000)
        rounds = 1
    else:
        sizes = dict(smoke=False, small=100_000, big=1_000_000, jobs=1000, job_items=1000,
                     companies=200, latency=100_000, recovery=1_000_000, storage_pages=1000,
                     peer_rounds_big=1, writeback=100_000,
                     scale_points=[1000, 10_000, 100_000], scale_peer_slice=10_000,
                     heavy_jobs=10_000, heavy_big=3, heavy_big_items=100_000)
        rounds = args.rounds
    sizes.setdefault("heavy_peer_slice", sizes["heavy_jobs"])
    if args.peer_slice:
        sizes["scale_peer_slice"] = sizes["heavy_peer_slice"] = args.peer_slice
    have_py, have_node = python_available(), node_available()
    if not have_py:
        log("python3-requests missing: the Python peer is skipped")
    if not have_node:
        log("node or better-sqlite3 missing: the Node.js peer is skipped")
    t_start = time.monotonic()
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    results = {
        "meta": {
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "commit": commit + ("+dirty tree" if dirty else ""),
            "machine": f"{os.cpu_count()} cores ({cpu}), {platform.system()} "
                       f"{platform.release()}",
            "note": "A shared 2-core VM: other work (builds, tests of other sessions) may have "
                    "been running during the measurement, so figures vary between runs; the "
                    "contenders are interleaved round by round so that load hits them alike.",
            "rounds": rounds, "smoke": args.smoke,
            "stage_config": "as shipped (state.sync = commits, page 500, defaults)"},
        "sizes": sizes, "scenarios": []}

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop simulators on the way out
    results["meta"]["fsync_ms_before"] = fsync_latency_ms()
    log(f"fsync latency (4 KiB write + fsync, median): {results['meta']['fsync_ms_before']} ms")
    # --only with scenarios that leave the earlier results standing (the write-back ones, or
    # any subset): the new figures are merged into the existing latest.json / latest.md.
    previous = None
    prev_path = os.path.join(args.results_dir, "latest.json") if args.results_dir else None
    if only and not args.smoke and prev_path and os.path.exists(prev_path):
        with open(prev_path) as f:
            previous = json.load(f)
    if previous is None or "ceilings" in only:
        results["ceilings"] = ceilings(sizes, rounds)
    else:
        results["ceilings"] = previous["ceilings"]

    def peers(ordering, n=None):
        c = []
        if have_py:
            c.append((f"python peer ({ordering})", python_peer(ordering), n))
        if have_node:
            c.append((f"node peer ({ordering})", node_peer(ordering), n))
        return c

    small, big = sizes["small"], sizes["big"]
    if want("small"):
        results["scenarios"].append(run_scenario(
            "1job-small-entry_id", f"1 job x {small:,}, entry_id", dict(jobs=1, items=small),
            [("wire client (cursor, no parsing)", wire(), None),
             ("stage (entry_id)", stage("entry_id"), None)] + peers("entry_id"), rounds))
        results["scenarios"].append(run_scenario(
            "1job-small-chronological", f"1 job x {small:,}, chronological",
            dict(jobs=1, items=small),
            [("wire client (data layer, cursor)", wire("export-items"), None),
             ("stage (chronological)", stage("chronological"), None)] +
            peers("chronological", 1), rounds,
            notes="peers: 1 round (the data layer is ~280 MB of JSON per 100 k items)"))
    big_entry = None
    if want("big"):
        s = run_scenario(
            "1job-big-entry_id", f"1 job x {big:,}, entry_id", dict(jobs=1, items=big),
            [("wire client (cursor, no parsing)", wire(), None),
             ("wire client offset x16 (as the stage lists)", wire(mode="offset", concurrency=16),
              None),
             ("stage (entry_id)", stage("entry_id"), None)] +
            peers("entry_id", sizes["peer_rounds_big"]), rounds)
        results["scenarios"].append(s)
        big_entry = find(results, "1job-big-entry_id", "stage")["wall_s"]["median"]
        results["scenarios"].append(run_scenario(
            "1job-big-chronological", f"1 job x {big:,}, chronological",
            dict(jobs=1, items=big),
            [("stage (chronological)", stage("chronological"), max(1, rounds - 1))], rounds,
            notes="peers skipped here: the data layer of 1 M items is ~2.8 GB of JSON"))
    if want("many"):
        results["scenarios"].append(run_scenario(
            "many-jobs",
            f"{sizes['jobs']:,} jobs x {sizes['job_items']:,} items, {sizes['companies']} "
            "companies, --max-jobs 32, entry_id",
            dict(jobs=sizes["jobs"], items=sizes["job_items"], companies=sizes["companies"]),
            [("stage (entry_id, --max-jobs 32)", stage("entry_id", max_jobs=32), None)] +
            [(n, f, 1) for n, f, _ in peers("entry_id")], rounds))
    if want("latency"):
        results["scenarios"].append(latency_scenario(sizes, max(1, rounds - 1), have_py))
    if want("recovery"):
        results["recovery"] = recovery_scenario(sizes, max(1, rounds - 1), big_entry)

    wb_which = [k for k in ("writeback", "loop") if want(k)]
    if wb_which:
        results["write_back"] = write_back_scenarios(sizes, rounds, have_py, wb_which)
        results["write_back"]["meta"]["commit"] = results["meta"]["commit"]

    if want("scale"):
        results["scale"] = scale_scenarios(sizes, have_py)
        results["scale"]["meta"]["commit"] = results["meta"]["commit"]

    results["meta"]["fsync_ms_after"] = fsync_latency_ms()
    results["meta"]["harness_seconds"] = took = time.monotonic() - t_start
    if previous is not None:
        results = merge_results(previous, results)
    results["targets"] = targets(results)
    out_dir = args.results_dir or os.path.join(WORK, "results")
    os.makedirs(out_dir, exist_ok=True)
    for s in results["scenarios"]:
        for c in s["contenders"]:
            for r in c["runs"]:
                r.pop("wire", None)
    with open(os.path.join(out_dir, "latest.json"), "w") as f:
        json.dump(results, f, indent=1)
    md_path = os.path.join(out_dir, "latest.md")
    md = markdown(results)
    if os.path.exists(md_path):  # sections "written by hand" outlive a re-measurement
        with open(md_path) as f:
            md = keep_hand_written(f.read(), md)
    with open(md_path, "w") as f:
        f.write(md)
        # The rate-limit section is written by ratelimit.py; keep it.
        rl = os.path.join(out_dir, "ratelimit.md")
        if os.path.exists(rl):
            with open(rl) as r:
                f.write("\n" + r.read())
    plots(results, out_dir)
    plot_scale(results.get("scale"), out_dir)
    log(f"done in {took:.0f} s: {out_dir}/latest.md")


if __name__ == "__main__":
    main()
