#!/usr/bin/env python3
"""`export-items worker` for operators (issue 12 part 6), run as a user runs it:

- with `--log-format json` every stderr line of a worker is a JSON object with time, level and
  event; the worker's events carry its name, and its job events (job_claimed, job_run_ended,
  job_recorded) the job id, company id and attempt; the claim lines carry `mono`;
- one worker runs a small batch to the end: each job claimed and recorded complete once,
  worker_started first, batch_done and worker_exiting (exitCode 0, its counters) last;
- `--metrics-file` holds OpenMetrics text that prometheus_client's parser accepts, with the
  worker's families (claims, jobs recorded by result, fenced) and the run's (items handed on);
- the API key appears nowhere (stderr, stdout, the output, the metrics file);
- the default text format is for people (not JSON; event and key=value fields on one line);
- `--log-level warn` leaves out the info lines; a bad `--prefix` is a usage error (exit 2)
  naming the flag that creates nothing.

One etcd member (plain http on loopback) and export-items-sim, both on free loopback ports
(the simulator binds port 0; etcd is given ports the OS just handed out), killed and reaped at
the end. Usage: worker_log_test.py <export-items> <export-items-sim> <etcd>. Takes seconds.
"""
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from prometheus_client.openmetrics.parser import text_string_to_metric_families

SECRET = "worker-log-test-secret-5b2f"
WORKER = "wlog-1"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    binary, sim_bin, etcd_bin = (os.path.abspath(a) for a in sys.argv[1:4])
    env = {"PATH": "/usr/bin:/bin", "PLEO_API_KEY": SECRET}
    if "ASAN_OPTIONS" in os.environ:
        env["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"]
    children = []
    with tempfile.TemporaryDirectory(prefix="ei-worker-log-") as d:
        try:
            client, peer = free_port(), free_port()
            etcd_url = f"http://127.0.0.1:{client}"
            children.append(subprocess.Popen(
                [etcd_bin, "--name", "m0", "--data-dir", os.path.join(d, "etcd"),
                 "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                 "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-cluster", f"m0=http://127.0.0.1:{peer}", "--log-level", "warn"],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "etcd.err"), "w"),
                env=env))
            sim = subprocess.Popen(
                [sim_bin, "--port", "0", "--api-key", SECRET, "--jobs", "3", "--items", "200",
                 "--companies", "2", "--all-in-progress", "--seed", "5"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
            children.append(sim)
            first = sim.stdout.readline().strip()
            check(first.startswith("listening on "), f"the simulator says where: {first!r}")
            base_url = "http://" + first[len("listening on "):]
            common = ["--etcd", etcd_url, "--prefix", "/wlog/"]

            # The batch (retried while etcd elects itself leader).
            deadline = time.monotonic() + 20
            while True:
                sub = subprocess.run([binary, "submit"] + common +
                                     ["--discover", "--base-url", base_url],
                                     capture_output=True, text=True, timeout=30, env=env, cwd=d)
                if sub.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            check(sub.returncode == 0 and "submitted 3 jobs" in sub.stderr,
                  f"submit (exit {sub.returncode}): {sub.stderr[-1000:]}")

            base = [binary, "worker"] + common
            worker = base + [
                "--state-dir", "st", "--out", "items.ndjson", "--base-url", base_url,
                "--name", WORKER, "--lease-ttl", "2", "--max-jobs", "2", "--page-size", "50"]
            r = subprocess.run(worker + ["--log-format", "json", "--log-level", "debug",
                                         "--metrics-file", "worker.prom"],
                               capture_output=True, text=True, timeout=60, env=env, cwd=d)
            check(r.returncode == 0, f"the worker exits 0 (got {r.returncode}): {r.stderr[-2000:]}")

            # --- one JSON object a line --------------------------------------------------
            events = []
            for line in r.stderr.splitlines():
                try:
                    obj = json.loads(line)
                except ValueError:
                    check(False, f"stderr line is not JSON: {line!r}")
                    continue
                if not isinstance(obj, dict):
                    check(False, f"not a JSON object: {line!r}")
                    continue
                check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
                                   obj.get("time", "")), f"an ISO-8601 UTC time: {line!r}")
                check(obj.get("level") in ("trace", "debug", "info", "warn", "error"),
                      f"a level: {line!r}")
                check(isinstance(obj.get("event"), str), f"an event: {line!r}")
                check(all(isinstance(v, str) for v in obj.values()), f"string values: {line!r}")
                events.append(obj)
            names = [e.get("event") for e in events]
            worker_events = [e for e in events if e.get("worker") is not None]
            for e in worker_events:
                check(e["worker"] == WORKER, f"the worker's name: {e}")
            for e in events:
                if e.get("event") in ("job_claimed", "job_run_ended", "job_recorded",
                                      "job_released", "job_started", "job_completed",
                                      "job_failed", "phase_changed"):
                    check(UUID.fullmatch(e.get("jobId", "")) is not None, f"a job id: {e}")
                    check(UUID.fullmatch(e.get("companyId", "")) is not None,
                          f"a company id: {e}")
                if e.get("event") in ("job_claimed", "job_run_ended", "job_recorded"):
                    check(e.get("worker") == WORKER and e.get("attempt") == "1",
                          f"the worker and attempt 1: {e}")
                    check(re.fullmatch(r"\d+", e.get("mono", "")) is not None,
                          f"a monotonic timestamp: {e}")
            claimed = sorted(e.get("jobId") for e in events if e.get("event") == "job_claimed")
            recorded = sorted(e.get("jobId") for e in events if e.get("event") == "job_recorded"
                              and e.get("result") == "complete" and e.get("level") == "info")
            check(len(claimed) == 3 and len(set(claimed)) == 3, f"three jobs claimed: {claimed}")
            check(recorded == claimed, f"each claimed job recorded complete once: {recorded}")
            check(names.count("job_started") == 3, "the stage's job_started lines too")
            check(bool(names) and names[0] == "worker_started", f"worker_started first: {names}")
            check(names[-2:] == ["batch_done", "worker_exiting"],
                  f"batch_done, then worker_exiting last: {names[-3:]}")
            if names and names[-1] == "worker_exiting":
                last = events[-1]
                check(last.get("exitCode") == "0" and last.get("claims") == "3" and
                      last.get("completed") == "3", f"the worker's counters: {last}")
            lines = open(os.path.join(d, "items.ndjson")).read().splitlines()
            handed = sum(int(e.get("handedOn", "0")) for e in events
                         if e.get("event") == "job_recorded")
            check(len(lines) > 0 and handed == len(lines),
                  f"handedOn adds up to the output's {len(lines)} lines (got {handed})")

            # --- the metrics file --------------------------------------------------------
            metrics_text = open(os.path.join(d, "worker.prom")).read()
            check(not os.path.exists(os.path.join(d, "worker.prom.tmp")), "no .tmp left")
            families = {f.name: f for f in text_string_to_metric_families(metrics_text)}

            def value(sample, **labels):
                for f in families.values():
                    for s in f.samples:
                        if s.name == sample and s.labels == labels:
                            return s.value
                check(False, f"no sample {sample}{labels} in the metrics file")
                return None

            for name, kind in [("export_items_worker_claims", "counter"),
                               ("export_items_worker_jobs_recorded", "counter"),
                               ("export_items_worker_releases", "counter"),
                               ("export_items_worker_fenced", "gauge"),
                               ("export_items_items_handed_on", "counter")]:
                check(name in families and families[name].type == kind, f"{name} is a {kind}")
            check(value("export_items_worker_claims_total") == 3, "3 claims")
            check(value("export_items_worker_jobs_recorded_total", result="complete") == 3,
                  "3 jobs recorded complete")
            check(value("export_items_worker_jobs_recorded_total", result="failed") == 0,
                  "no job recorded failed")
            check(value("export_items_worker_fenced") == 0, "not fenced")
            check(value("export_items_worker_jobs_claimed") == 0, "no claim held at exit")
            check(value("export_items_items_handed_on_total") == len(lines),
                  "items handed on = the output's lines")
            check(value("export_items_run_in_progress") == 0, "the final file says it ended")

            # --- no secret anywhere ------------------------------------------------------
            encoded = base64.b64encode((SECRET + ":").encode()).decode()
            for name, text in [("stderr", r.stderr), ("stdout", r.stdout),
                               ("output", "\n".join(lines)), ("metrics", metrics_text)]:
                check(SECRET not in text and encoded not in text, f"no API key in {name}")

            # --- text for people; --log-level --------------------------------------------
            # The batch is done: a second worker only finds that out and exits 0.
            t = subprocess.run(base + ["--state-dir", "st2", "--out", "items2.ndjson",
                                               "--base-url", base_url, "--name", WORKER],
                               capture_output=True, text=True, timeout=30, env=env, cwd=d)
            check(t.returncode == 0, f"a worker on a done batch exits 0: {t.stderr[-1000:]}")
            text_lines = t.stderr.splitlines()
            check(any(re.fullmatch(r"\S+Z info  batch_done worker=" + WORKER +
                                   r" prefix=/wlog/ jobs=3 .+", l) for l in text_lines),
                  f"a readable batch_done line: {text_lines}")
            check(not any(l.startswith("{") for l in text_lines), "text lines are not JSON")
            q = subprocess.run(base + ["--state-dir", "st3", "--out", "items3.ndjson",
                                               "--base-url", base_url, "--log-level", "warn"],
                               capture_output=True, text=True, timeout=30, env=env, cwd=d)
            check(q.returncode == 0 and q.stderr == "",
                  f"--log-level warn: nothing to say on a done batch ({q.stderr!r})")

            # --- a usage error names the flag and creates nothing ------------------------
            bad = subprocess.run([binary, "worker", "--etcd", etcd_url, "--prefix", "wlog",
                                  "--state-dir", "st4", "--out", "items4.ndjson",
                                  "--base-url", base_url, "--log-format", "json"],
                                 capture_output=True, text=True, timeout=30, env=env, cwd=d)
            check(bad.returncode == 2 and "--prefix" in bad.stderr,
                  f"--prefix wlog: exit 2 naming the flag ({bad.returncode}: {bad.stderr})")
            check(not os.path.exists(os.path.join(d, "st4")) and
                  not os.path.exists(os.path.join(d, "items4.ndjson")),
                  "a usage error creates nothing")
        finally:
            for c in children:
                c.send_signal(signal.SIGKILL)
                c.wait(timeout=10)

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("worker_log_test: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
