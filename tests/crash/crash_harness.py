#!/usr/bin/env python3
"""Crash harness: kill -9 the real export-items binary, again and again, and prove recovery.

Starts export-items-sim as its own process (several jobs, thousands of items, transient faults
on), makes one uninterrupted reference run, then runs episodes: each episode starts from an
empty state directory and output file and re-runs `export-items run` until it exits 0; every
run before that is killed, either by SIGKILL after a random delay or at a named crash point
(EI_CRASH_AT). After each episode it checks, against the reference run and the simulator:
  * the output holds whole NDJSON lines only;
  * every in-scope item is there exactly once (acknowledged items never twice; lines of items
    in flight at a kill were cut and re-emitted flagged `redelivery`), none is missing, no
    out-of-scope item is there;
  * per job, the order is identical to the uninterrupted run's;
  * `export-items state verify` is clean.
Prints a closing line `N passed, M failed` and exits non-zero on any failure.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

CRASH_POINTS = [
    "after_page_commit", "after_order_chunk", "before_finish_order", "after_dispatch_commit",
    "after_batch_sent", "after_output_write", "after_output_fsync", "after_ack_commit",
    "after_relist_page", "before_complete",
]
KEY = "crash-harness-key"


def start_simulator(sim, args):
    cmd = [sim, "--port", "0", "--api-key", KEY, "--seed", str(args.seed), "--jobs", str(args.jobs),
           "--companies", str(args.companies), "--items", str(args.items), "--all-in-progress",
           "--threads", "1", "--faults", args.faults]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, "http://" + line[len("listening on "):]


def job_ids(sim, args):
    out = subprocess.run([sim, "--print-jobs", "--api-key", KEY, "--seed", str(args.seed), "--jobs",
                          str(args.jobs), "--companies", str(args.companies), "--items",
                          str(args.items), "--all-in-progress"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return [j["id"] for j in json.loads(out)]


def run_args(args, url, jobs_file, state, out, binary=None):
    cmd = [binary or args.bin, "run", "--base-url", url, "--jobs-file", jobs_file, "--state-dir", state,
           "--out", out, "--ordering", args.ordering, "--page-size", str(args.page_size),
           "--max-jobs", str(args.max_jobs), "--listing", args.listing, "--quiet", "--summary",
           out + ".summary.json"]
    if args.sort_run_items:
        # Small sorted runs, so that the orderer spills and merges (and is killed doing so),
        # and a credit window well below a job's size, so that kills land between windows.
        config = os.path.join(args.work, "harness-config.json")
        if not os.path.exists(config):
            with open(config, "w") as f:
                json.dump({"sort_run_items": args.sort_run_items, "credit_window": 1000,
                           "batch_size": 250}, f)
        cmd += ["--config", config]
    return cmd


def read_output(path):
    """Returns {job: [(id, redelivery, attempt, sequence)]} and a list of problems."""
    problems = []
    per_job = {}
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        problems.append("the output ends with a torn line")
    for n, raw in enumerate(data.split(b"\n")[:-1] if data else [], 1):
        try:
            line = json.loads(raw)
        except ValueError:
            problems.append(f"line {n} is not JSON: {raw[:80]!r}")
            continue
        per_job.setdefault(line["jobId"], []).append(
            (line["accountingEntryId"], line["redelivery"], line["attempt"], line["sequence"]))
    return per_job, problems


def check_episode(args, reference, out, state):
    problems = []
    got, torn = read_output(out)
    problems += torn
    redelivered = 0
    for job, ref_lines in reference.items():
        ids = [l[0] for l in got.get(job, [])]
        ref_ids = [l[0] for l in ref_lines]
        seen = set()
        dups = [i for i in ids if i in seen or seen.add(i)]
        if dups:
            problems.append(f"job {job}: {len(dups)} item(s) emitted twice, e.g. {dups[0]}")
        missing = set(ref_ids) - set(ids)
        extra = set(ids) - set(ref_ids)
        if missing:
            problems.append(f"job {job}: {len(missing)} in-scope item(s) lost")
        if extra:
            problems.append(f"job {job}: {len(extra)} item(s) not in scope emitted")
        if not dups and not missing and not extra and ids != ref_ids:
            problems.append(f"job {job}: order differs from the uninterrupted run")
        seqs = [l[3] for l in got.get(job, [])]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"job {job}: sequences are not 1..n in the output")
        for (_, redelivery, attempt, _) in got.get(job, []):
            if redelivery:
                redelivered += 1
                if attempt < 2:
                    problems.append(f"job {job}: a redelivery with attempt {attempt}")
            elif attempt != 1:
                problems.append(f"job {job}: attempt {attempt} without the redelivery flag")
    for job in got:
        if job not in reference:
            problems.append(f"unknown job {job} in the output")
    verify = subprocess.run([args.bin, "state", "verify", "--state-dir", state],
                            capture_output=True, text=True, timeout=120)
    if verify.returncode != 0:
        problems.append("state verify: " + (verify.stdout + verify.stderr).strip()[:400])
    return problems, redelivered


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bin", required=True, help="export-items binary")
    p.add_argument("--crash-bin", help="binary with crash points compiled in, used for the "
                                       "crash-point runs (default: --bin)")
    p.add_argument("--sim", required=True, help="export-items-sim binary")
    p.add_argument("--work", required=True, help="scratch directory (recreated)")
    p.add_argument("--cycles", type=int, default=40, help="kill cycles to run (default 40)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--companies", type=int, default=3)
    p.add_argument("--items", type=int, default=3000)
    p.add_argument("--page-size", type=int, default=200)
    p.add_argument("--max-jobs", type=int, default=3)
    p.add_argument("--ordering", default="chronological")
    p.add_argument("--listing", default="parallel", help="parallel (the default) or cursor")
    p.add_argument("--sort-run-items", type=int, default=1000,
                   help="orderer's sorted-run size (0: the shipped default)")
    p.add_argument("--faults", default="items:status=503@rate=0.03;items:reset_mid_body@rate=0.01;"
                                       "export_items:throttle=0@rate=0.02;items:truncate@rate=0.01")
    p.add_argument("--max-delay", type=float, default=0.8, help="random kill delay upper bound (s)")
    p.add_argument("--run-timeout", type=float, default=120.0)
    p.add_argument("--verbose", action="store_true", help="print every run")
    args = p.parse_args()
    args.crash_bin = args.crash_bin or args.bin

    rng = random.Random(args.seed)
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    sim, url = start_simulator(args.sim, args)
    failures = []
    stats = {"cycles": 0, "episodes": 0, "random_kills": 0, "crash_point_kills": 0,
             "redelivered": 0, "runs": 0}
    env = dict(os.environ)
    env["PLEO_API_KEY"] = KEY
    env.pop("EI_CRASH_AT", None)
    try:
        jobs_file = os.path.join(args.work, "jobs.txt")
        with open(jobs_file, "w") as f:
            f.write("\n".join(job_ids(args.sim, args)) + "\n")
        ref_out = os.path.join(args.work, "reference.ndjson")
        ref_start = time.monotonic()
        ref = subprocess.run(run_args(args, url, jobs_file, os.path.join(args.work, "ref-state"),
                                      ref_out), env=env, capture_output=True, text=True,
                             timeout=args.run_timeout)
        # Random kills land within an uninterrupted run's duration (a faster stage would
        # otherwise finish before most of them).
        kill_window = min(args.max_delay, max(0.05, time.monotonic() - ref_start))
        if ref.returncode != 0:
            raise SystemExit("reference run failed: " + ref.stderr[-2000:])
        reference, problems = read_output(ref_out)
        if problems or not reference:
            raise SystemExit(f"reference output unusable: {problems}")

        point_index = 0
        while stats["cycles"] < args.cycles:
            stats["episodes"] += 1
            ep = os.path.join(args.work, f"episode-{stats['episodes']}")
            os.makedirs(ep)
            state, out = os.path.join(ep, "state"), os.path.join(ep, "out.ndjson")
            completed = False
            for attempt in range(1, 200):
                run_env = dict(env)
                use_point = stats["cycles"] < args.cycles and rng.random() < 0.5
                if use_point:
                    point = CRASH_POINTS[point_index % len(CRASH_POINTS)]
                    point_index += 1
                    run_env["EI_CRASH_AT"] = f"{point}:{rng.randint(1, 4)}"
                binary = args.crash_bin if use_point else args.bin
                proc = subprocess.Popen(run_args(args, url, jobs_file, state, out, binary),
                                        env=run_env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                stats["runs"] += 1
                killed_by_us = False
                if not use_point and stats["cycles"] < args.cycles:
                    try:
                        proc.wait(timeout=rng.uniform(0.005, kill_window))
                    except subprocess.TimeoutExpired:
                        proc.send_signal(signal.SIGKILL)
                        killed_by_us = True
                try:
                    _, err = proc.communicate(timeout=args.run_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                    failures.append(f"episode {stats['episodes']}: a run hung")
                    break
                if args.verbose:
                    print(f"episode {stats['episodes']} run {attempt}: "
                          f"{run_env.get('EI_CRASH_AT', 'random kill' if killed_by_us else 'no kill')}"
                          f" -> exit {proc.returncode}", flush=True)
                if proc.returncode == -signal.SIGKILL:
                    stats["cycles"] += 1
                    stats["random_kills" if killed_by_us else "crash_point_kills"] += 1
                    continue
                if proc.returncode == 0:
                    completed = True
                    break
                failures.append(f"episode {stats['episodes']} run {attempt}: exit "
                                f"{proc.returncode}: {err.strip()[-600:]}")
                break
            if not completed:
                if not failures:
                    failures.append(f"episode {stats['episodes']} never completed")
                break
            problems, redelivered = check_episode(args, reference, out, state)
            stats["redelivered"] += redelivered
            failures += [f"episode {stats['episodes']}: {p}" for p in problems]
            if problems:
                break
            shutil.rmtree(ep, ignore_errors=True)
    finally:
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()

    print(f"crash harness: {stats['cycles']} kill cycles ({stats['random_kills']} random, "
          f"{stats['crash_point_kills']} at crash points) over {stats['episodes']} episodes and "
          f"{stats['runs']} runs; {stats['redelivered']} flagged redeliveries in the final outputs; "
          f"duplicates of acked items: {0 if not failures else 'see failures'}; lost items: "
          f"{0 if not failures else 'see failures'}")
    for f in failures:
        print("FAIL:", f)
    print(f"{stats['episodes'] - (1 if failures else 0)} passed, {1 if failures else 0} failed")
    if not failures:
        shutil.rmtree(args.work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
