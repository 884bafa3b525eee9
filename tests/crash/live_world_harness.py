#!/usr/bin/env python3
"""Live-world crash harness: kill -9 the stage while the world it reads keeps moving.

The still-world harness (crash_harness.py) proves recovery against a simulator whose item
statuses never change. Here, per episode, a fresh export-items-sim (seeded: the initial
in-scope set S0) is changed while the stage runs and between its runs:

  * a downstream (the ERP step) tails <out>, handles the file being cut back by a restart,
    reads <out>.committed when it exists, and reports outcomes back with
    PUT /v3/export-jobs/{id}/items in batches of <= 100: mostly `successful` (exportedAt,
    externalId, externalUrl), some `failed` (failureReasonType, failureReason); sometimes
    before the stage's ack (past the committed offset), sometimes only up to it; it re-sends
    items it reported already; it also works between a kill and the restart;
  * another writer now and then finalises items the stage has not handed on (recorded after
    the PUT's 200);
  * between runs, a job whose items are all acked locally and all final remotely may be
    completed remotely (POST /v3/export-job-events "completed"), as an ERP step would.

Runs are killed with SIGKILL after a random delay or at a named crash point (EI_CRASH_AT, run
with --crash-bin), in both orderings and both listing modes, until a run exits 0. The oracle
(independent of timing) is described in README.md next to this file; every check is named in
the failure output, which also prints the episode's run history, and the episode's work
directory is kept. Closing line: `N passed, M failed` (episodes).
"""
import argparse
import base64
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections import Counter, defaultdict
from datetime import datetime, timezone

CRASH_POINTS = [
    "after_page_commit", "after_order_chunk", "before_finish_order", "after_dispatch_commit",
    "after_batch_sent", "after_output_write", "after_output_fsync", "after_ack_commit",
    "after_relist_page", "before_complete",
]
KEY = "live-world-harness-key"
FAILURE_TYPES = ["account_mapping_missing", "tax_code_invalid", "period_closed",
                 "vendor_missing", "erp_validation_error"]
SUMMARY_FIELDS = ("inScope", "acked", "skippedFinalRemotely", "reported")


class HarnessError(Exception):
    """The harness itself could not do its part (not a failure of the stage)."""


class StageError(Exception):
    """A failure of the stage outside the oracle (e.g. the reference run)."""


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when the harness dies (e.g. a ctest timeout), so no
    simulator or stage outlives it."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def tool_env():
    env = dict(os.environ, PLEO_API_KEY=KEY)
    env.pop("EI_CRASH_AT", None)
    return env


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --------------------------------------------------------------------------------------------
# The simulator and a small HTTP client


class Sim:
    def __init__(self, args, seed, workdir, faults):
        self.cmd = [args.sim, "--port", "0", "--api-key", KEY, "--seed", str(seed), "--jobs",
                    str(args.jobs), "--companies", str(args.companies), "--items",
                    str(args.items), "--all-in-progress", "--threads", "1"]
        if faults:
            self.cmd += ["--faults", faults]
        self.log = open(os.path.join(workdir, f"sim-{seed}.stderr"), "w")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     preexec_fn=die_with_parent)
        line = self._first_line(10.0)
        if not line.startswith("listening on "):
            self.stop()
            raise HarnessError(f"simulator did not start: {line!r}")
        self.hostport = line[len("listening on "):]
        self.url = "http://" + self.hostport
        self.conn = None
        self.retried_writes = 0
        self.auth = "Basic " + base64.b64encode((KEY + ":").encode()).decode()

    def _first_line(self, timeout):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return "(no output within %.0f s)" % timeout
        return self.proc.stdout.readline().strip()

    def stop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()

    def request(self, method, path, body=None, attempts=12):
        """(status, parsed JSON or None). Retries transport errors, truncated bodies and 5xx/429
        (GETs may be faulted; PUTs and events are not, and are idempotent for the harness)."""
        last = None
        for attempt in range(attempts):
            try:
                if self.conn is None:
                    host, port = self.hostport.rsplit(":", 1)
                    self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
                headers = {"Authorization": self.auth, "Accept": "application/json"}
                data = None
                if body is not None:
                    data = json.dumps(body).encode()
                    headers["Content-Type"] = "application/json"
                self.conn.request(method, path, body=data, headers=headers)
                res = self.conn.getresponse()
                raw = res.read()
                if res.status in (429, 500, 502, 503, 504):
                    last = f"HTTP {res.status}"
                    time.sleep(0.01 * (attempt + 1))
                    continue
                if not raw:
                    return res.status, None
                return res.status, json.loads(raw)
            except (OSError, http.client.HTTPException, ValueError) as e:
                if method != "GET":
                    self.retried_writes += 1  # it may have been applied: counters unknowable
                last = f"{type(e).__name__}: {e}"
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                time.sleep(0.01 * (attempt + 1))
        raise HarnessError(f"{method} {path}: no usable answer after {attempts} attempts ({last})")

    def list_items(self, job):
        """Every item of a job (offset pages, checked against `total`)."""
        items, offset = [], 0
        while True:
            st, page = self.request("GET", f"/v3/export-jobs/{job}/items?limit=1000&offset={offset}")
            if st != 200:
                raise HarnessError(f"listing {job}: HTTP {st} {page}")
            items += page["data"]
            total = page["pagination"].get("total")
            offset += len(page["data"])
            if not page["data"] or (total is not None and offset >= total):
                break
        ids = [i["accountingEntryId"] for i in items]
        if len(set(ids)) != len(ids):
            raise HarnessError(f"listing {job}: repeated items (a faulted page?)")
        return items


def print_jobs(args, seed):
    out = subprocess.run([args.sim, "--print-jobs", "--api-key", KEY, "--seed", str(seed),
                          "--jobs", str(args.jobs), "--companies", str(args.companies),
                          "--items", str(args.items), "--all-in-progress"],
                         check=True, capture_output=True, text=True, timeout=30).stdout
    return [j["id"] for j in json.loads(out)]


# --------------------------------------------------------------------------------------------
# The tailer: every line ever visible in <out>, as (offset, bytes) sightings


class Sighting:
    __slots__ = ("n", "t", "run", "offset", "end", "raw", "job", "id", "redelivery", "attempt",
                 "sequence", "acked_at")

    def __init__(self, n, t, run, offset, raw, line):
        self.n, self.t, self.run, self.offset, self.raw = n, t, run, offset, raw
        self.end = offset + len(raw) + 1
        self.job, self.id = line["jobId"], line["accountingEntryId"]
        self.redelivery, self.attempt = line["redelivery"], line["attempt"]
        self.sequence = line["sequence"]
        self.acked_at = None

    def key(self):
        return (self.job, self.id)

    def __repr__(self):
        return (f"line@{self.offset} run {self.run} seq {self.sequence} attempt {self.attempt}"
                f" redelivery {str(self.redelivery).lower()}")


def common_prefix(a, b):
    if len(b) >= len(a) and b.startswith(a):
        return len(a)
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class Tailer:
    """Follows <out> like a downstream would. A line is one sighting per (offset, bytes): reading
    the same bytes again is not a new sighting; a line at an offset rewritten after a cut is
    (byte-identical rewrites cannot be told apart by any reader and count as the same line).
    Within a run the stage only cuts once, at its start, before appending; the harness reads
    the whole file after every run has ended, so every line the stage ever wrote is seen."""

    def __init__(self, path):
        self.path = path
        self.committed_path = path + ".committed"
        self.cur = b""
        self.sightings = []
        self.keys = {}
        self.by_item = defaultdict(list)
        self.committed = None       # the last committed offset read
        self.committed_seen = False
        self.problems = []          # (check, job, item, detail)
        self.acks = {}              # (job, id) -> Sighting acknowledged through <out>.committed
        self.ack_pos = 0            # lines before this offset were looked at for acks

    def read_committed(self):
        try:
            with open(self.committed_path, "rb") as f:
                text = f.read()
        except FileNotFoundError:
            return None
        try:
            return int(text.strip())
        except ValueError:
            # Replaced by rename, so never half-written: anything else is a real problem.
            self.problems.append(("committed-offset", None, None,
                                  f"{self.committed_path} does not hold a number: {text[:40]!r}"))
            return None

    def poll(self, run, stable=False):
        """Reads <out> (and <out>.committed first). `stable`: no writer is alive, so a complete
        line that is not valid JSON is a real torn line rather than a write in progress."""
        committed = self.read_committed()
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        now = time.monotonic()
        d = common_prefix(self.cur, data)
        pos = data.rfind(b"\n", 0, d) + 1
        keep = len(data)
        while True:
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            raw = data[pos:nl]
            key = (pos, raw)
            if key not in self.keys:
                try:
                    line = json.loads(raw)
                    if not isinstance(line, dict) or "accountingEntryId" not in line:
                        raise ValueError("not an item line")
                except ValueError:
                    if not stable:
                        keep = pos  # a write in progress; read it again next time
                        break
                    self.problems.append(("whole-lines", None, None,
                                          f"line at offset {pos} is not an item line: {raw[:80]!r}"))
                    pos = nl + 1
                    continue
                s = Sighting(len(self.sightings), now, run, pos, raw, line)
                self.keys[key] = s
                self.sightings.append(s)
                self.by_item[s.key()].append(s)
            pos = nl + 1
        self.cur = data[:keep]
        if committed is not None:
            self.note_committed(committed, now)
        return data

    def note_committed(self, committed, now):
        self.committed_seen = True
        if self.committed is not None and committed < self.committed:
            self.problems.append(("committed-offset", None, None,
                                  f"committed offset went back from {self.committed} to {committed}"))
        self.committed = committed
        # Every complete line at or below the committed offset is acknowledged. Bytes below it
        # never change (if they do, the final-file check reports the acknowledged line as cut).
        pos = self.ack_pos
        data = self.cur
        while pos < min(committed, len(data)):
            nl = data.find(b"\n", pos)
            if nl < 0 or nl + 1 > committed:
                break
            s = self.keys.get((pos, data[pos:nl]))
            if s is not None and s.acked_at is None:
                s.acked_at = now
                self.acks.setdefault(s.key(), s)
            pos = nl + 1
        self.ack_pos = max(self.ack_pos, pos)

    def lines_after(self, n):
        return self.sightings[n:]


# --------------------------------------------------------------------------------------------
# The moving world: downstream write-back, another writer, remote completion


class World:
    def __init__(self, args, rng, sim, jobs, s0, out):
        self.args, self.rng, self.sim, self.jobs, self.s0 = args, rng, sim, jobs, s0
        self.tailer = Tailer(out)
        self.outcome = {}                    # (job, id) -> "successful" | "failed" (decided once)
        self.reported = {}                   # (job, id) -> number of downstream PUTs applied
        self.remote_final = {}               # (job, id) -> status, per the PUT answers (200 data)
        self.pending_eager = []              # sightings not yet reported
        self.next_sighting = 0
        self.other_writer = {}               # (job, id) -> (time, status, run label)
        self.completed_jobs = {}             # job -> run label
        self.finished_jobs = set()           # jobs the API answers 422 for (completed)
        self.applied = Counter()             # (job, id) -> applied updates (to compare with sim)
        self.stats = Counter()
        self.early = rng.random() < args.early_writer_share

    # --- downstream
    def _update(self, item, status):
        job, id_ = item
        u = {"accountingEntryId": id_, "status": status}
        if status == "successful":
            u.update(exportedAt=now_iso(), externalId="JE-" + id_[:8],
                     externalUrl="https://erp.harness.invalid/entries/" + id_)
        else:
            t = FAILURE_TYPES[hash(id_) % len(FAILURE_TYPES)]
            u.update(failureReasonType=t, failureReason="harness ERP: " + t)
        return u

    def put(self, job, items, who):
        """PUTs `items` [(job, id)] with their statuses; returns the items the API applied."""
        if job in self.finished_jobs:
            return []
        body = []
        for item in items:
            status = self.outcome.get(item) if who == "downstream" else self.ow_status[item]
            body.append(self._update(item, status))
        st, res = self.sim.request("PUT", f"/v3/export-jobs/{job}/items", body)
        if st == 422:
            self.finished_jobs.add(job)
            self.stats["put_422_job_finished"] += 1
            return []
        if st != 200:
            raise HarnessError(f"PUT items of {job}: HTTP {st} {res}")
        self.stats["puts"] += 1
        applied = []
        for d in res["data"]:
            item = (job, d["accountingEntryId"])
            self.remote_final[item] = d["status"]
            self.applied[item] += 1
            applied.append(item)
        for e in res["errors"]:
            if e["type"] == "EXPORT_ENTRY_STATUS_UPDATE_FAILED":
                # Final is terminal: another writer got there first with another outcome.
                self.stats["put_rejected_final"] += 1
            else:
                raise HarnessError(f"PUT items of {job}: unexpected per-item error {e}")
        return applied

    def downstream_batch(self, mode, size=None):
        """One write-back batch (<= 100 items of one job). mode: eager (anything seen),
        committed (only acknowledged lines), resend (items reported before). True when it
        sent one."""
        t = self.tailer
        for s in t.lines_after(self.next_sighting):
            self.pending_eager.append(s)
        self.next_sighting = len(t.sightings)
        if mode == "resend":
            pool = [i for i in self.reported if i[0] not in self.finished_jobs]
            if not pool:
                return False
            job = self.rng.choice(pool)[0]
            pool = [i for i in pool if i[0] == job]
            items = self.rng.sample(pool, min(len(pool), self.rng.randint(1, 100)))
        else:
            cands = [s for s in self.pending_eager
                     if mode == "eager" or s.acked_at is not None]
            if not cands:
                return False
            job = cands[0].job
            if size is None:
                size = 100 if self.rng.random() < 0.7 else self.rng.randint(1, 100)
            chosen = [s for s in cands if s.job == job][:size]
            ids = set(id(s) for s in chosen)
            self.pending_eager = [s for s in self.pending_eager if id(s) not in ids]
            items = list(dict.fromkeys(s.key() for s in chosen))
            for s in chosen:
                if s.acked_at is None:
                    self.stats["reported_before_ack"] += 1
                else:
                    self.stats["reported_after_ack"] += 1
        for item in items:
            if item not in self.outcome:
                self.outcome[item] = ("failed" if self.rng.random() < self.args.fail_rate
                                      else "successful")
        for item in self.put(job, items, "downstream"):
            self.reported[item] = self.reported.get(item, 0) + 1
        self.stats["downstream_batches_" + mode] += 1
        return True

    # --- another writer
    def other_writer_step(self, label):
        """Finalises a few items the stage has not handed on (per the tailer, read just now).
        Normally only of a job whose order is fixed (a line of it was seen), so that S0 is what
        the stage listed; in an `early` episode also of jobs still being listed (the stage may
        then see such an item final in its first listing: out of scope from the start)."""
        seen = self.tailer.by_item
        started = set(s.job for s in self.tailer.sightings)
        cands = [j for j in self.jobs if (j in started or self.early)
                 and j not in self.finished_jobs]
        if not cands:
            return
        job = self.rng.choice(cands)
        pool = [i for i in self.s0[job] if (job, i) not in seen and (job, i) not in self.other_writer
                and (job, i) not in self.remote_final]
        if not pool:
            return
        items = [(job, i) for i in self.rng.sample(pool, min(len(pool), self.rng.randint(1, 4)))]
        self.ow_status = {i: ("failed" if self.rng.random() < 0.3 else "successful") for i in items}
        for item in self.put(job, items, "other"):
            self.other_writer[item] = (time.monotonic(), self.ow_status[item], label,
                                       job not in started)
            self.stats["other_writer_items"] += 1

    # --- one step while a run is alive
    def step(self, run):
        self.tailer.poll(run)
        r = self.rng.random()
        if r < self.args.downstream_rate:
            self.downstream_batch("eager" if self.rng.random() < self.args.eager_share
                                  else "committed")
        elif r < self.args.downstream_rate + 0.03:
            self.downstream_batch("resend")
        if self.rng.random() < self.args.other_writer_rate:
            self.other_writer_step(f"during run {run}")

    # --- between a kill and the restart
    def between(self, run, status_by_job):
        self.tailer.poll(run, stable=True)
        r = self.rng.random()
        if r < 0.4:
            # Caught up with everything it saw: lines the restart will cut turn final remotely
            # (the stage must report them, not hand them on again).
            while self.downstream_batch("eager", 100):
                pass
        elif r < 0.7:
            # Caught up with what was acknowledged only: the cut lines stay pending remotely
            # (the stage must redeliver them, flagged).
            while self.downstream_batch("committed", 100):
                pass
        else:
            for _ in range(self.rng.randint(0, 4)):
                self.downstream_batch(self.rng.choice(["eager", "committed", "resend"]))
        if self.rng.random() < 0.3:
            self.downstream_batch("resend")
        if self.rng.random() < 0.5:
            self.other_writer_step(f"after run {run}")
        # A job acked through its end locally (killed before it was marked complete, or
        # after) whose items are all final remotely may be completed by the ERP step.
        for job, st in status_by_job.items():
            if job in self.finished_jobs or self.rng.random() >= self.args.complete_rate:
                continue
            if st.get("orderSize") is None or st.get("ackedThrough") != st.get("orderSize"):
                continue
            # Report whatever is outstanding first.
            for _ in range(200):
                left = [s for s in self.pending_eager + self.tailer.lines_after(self.next_sighting)
                        if s.job == job]
                if not left:
                    break
                self.downstream_batch_job(job)
            if all((job, i) in self.remote_final for i in self.s0[job]):
                code, res = self.sim.request("POST", "/v3/export-job-events",
                                             {"jobId": job, "event": "completed"})
                if code != 202:
                    raise HarnessError(f"completing {job}: HTTP {code} {res}")
                self.completed_jobs[job] = f"after run {run} (local phase {st.get('phase')})"
                self.finished_jobs.add(job)
                self.stats["jobs_completed_remotely"] += 1

    def downstream_batch_job(self, job):
        for s in self.tailer.lines_after(self.next_sighting):
            self.pending_eager.append(s)
        self.next_sighting = len(self.tailer.sightings)
        chosen = [s for s in self.pending_eager if s.job == job][:100]
        ids = set(id(s) for s in chosen)
        self.pending_eager = [s for s in self.pending_eager if id(s) not in ids]
        items = list(dict.fromkeys(s.key() for s in chosen))
        for item in items:
            self.outcome.setdefault(item, "failed" if self.rng.random() < self.args.fail_rate
                                    else "successful")
        for item in self.put(job, items, "downstream"):
            self.reported[item] = self.reported.get(item, 0) + 1


# --------------------------------------------------------------------------------------------
# Runs


def run_cmd(binary, args, ep, url, jobs_file, ordering, listing):
    return [binary, "run", "--base-url", url, "--jobs-file", jobs_file, "--state-dir",
            ep["state"], "--out", ep["out"], "--ordering", ordering, "--page-size",
            str(args.page_size), "--max-jobs", str(args.max_jobs), "--listing", listing,
            "--quiet", "--summary", ep["out"] + ".summary.json", "--config", ep["config"]]


def job_status(args, state):
    """{job: status --json entry} of a state directory (empty when it has none)."""
    try:
        p = subprocess.run([args.bin, "status", "--state-dir", state, "--json"],
                           capture_output=True, text=True, timeout=60, env=tool_env())
    except subprocess.TimeoutExpired:
        return {}
    if p.returncode != 0:
        return {}
    try:
        return {j["jobId"]: j for j in json.loads(p.stdout)}
    except (ValueError, KeyError, TypeError):
        return {}


def read_lines(path):
    """[(offset, dict)] of a whole NDJSON file and problems."""
    problems, out = [], []
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return out, problems
    if data and not data.endswith(b"\n"):
        problems.append(f"{os.path.basename(path)} ends with a torn line")
    pos = 0
    for raw in data.split(b"\n")[:-1] if data else []:
        try:
            out.append((pos, json.loads(raw)))
        except ValueError:
            problems.append(f"{os.path.basename(path)}: line at {pos} is not JSON: {raw[:80]!r}")
        pos += len(raw) + 1
    return out, problems


# --------------------------------------------------------------------------------------------
# The oracle


class Checks:
    def __init__(self):
        self.failures = []   # (check, job, item, detail)
        self.skipped = []    # (check, reason)

    def fail(self, check, job, item, detail):
        self.failures.append((check, job, item, detail))

    def skip(self, check, reason):
        self.skipped.append((check, reason))


def check_episode(args, ep, world, reference, final_summary):
    c = Checks()
    t = world.tailer
    for p in t.problems:
        c.fail(*p)
    final, problems = read_lines(ep["out"])
    for p in problems:
        c.fail("whole-lines", None, None, p)
    with open(ep["out"], "rb") as f:
        final_bytes = f.read()
    final_by_job = defaultdict(list)
    for off, line in final:
        final_by_job[line["jobId"]].append((off, line))
    recon, rproblems = read_lines(ep["out"] + ".reconcile.ndjson")
    for p in rproblems:
        c.fail("reconcile-report", None, None, p)
    recon_by_job = defaultdict(set)
    for _, r in recon:
        recon_by_job[r.get("jobId")].add(r.get("accountingEntryId"))
    summary_jobs = {j["jobId"]: j for j in (final_summary or {}).get("jobs", [])}
    if t.committed_seen and t.committed is not None and t.committed > len(final_bytes):
        c.fail("committed-offset", None, None,
               f"the last committed offset {t.committed} is beyond the final file "
               f"({len(final_bytes)} bytes)")
    elif not t.committed_seen:
        c.skip("acked-by-committed-offset", f"{os.path.basename(t.committed_path)} never appeared")
    stats = Counter()
    for job in world.jobs:
        s0 = world.s0[job]
        ref = reference.get(job, [])
        if set(ref) != s0:
            c.fail("reference", job, None, f"the still-world reference run lists {len(ref)} items,"
                   f" S0 has {len(s0)} (symmetric difference {len(set(ref) ^ s0)})")
        seen = {i for (j, i) in t.by_item if j == job}
        ow = {i for (j, i) in world.other_writer if j == job}
        known_final = {i for (j, i) in world.remote_final if j == job}
        lines = final_by_job.get(job, [])
        final_ids = [l["accountingEntryId"] for _, l in lines]
        final_set = set(final_ids)
        # Every item of S0 reached the downstream, or the other writer finalised it first.
        lost = sorted(s0 - seen - ow)
        for i in lost:
            c.fail("lost", job, i, "in S0, never handed on, not finalised by the other writer")
        for i in sorted(seen - s0):
            c.fail("out-of-scope", job, i, "handed on but not in S0")
        # No item reaches the downstream a second time without the redelivery flag.
        for i in sorted(seen):
            sights = t.by_item[(job, i)]
            for k, s in enumerate(sights):
                if s.redelivery and s.attempt < 2:
                    c.fail("redelivery-attempt", job, i, f"{s} is flagged with attempt < 2")
                if not s.redelivery and s.attempt != 1:
                    c.fail("redelivery-attempt", job, i, f"{s} has attempt {s.attempt} unflagged")
                if k > 0 and not s.redelivery:
                    c.fail("unflagged-repeat", job, i, f"{s} after {sights[0]}")
                    stats["unflagged_repeats"] += 1
                if s.redelivery:
                    stats["redeliveries"] += 1
            acked = t.acks.get((job, i))
            if acked is not None:
                later = [s for s in sights if s.n > acked.n]
                if later:
                    c.fail("acked-again", job, i, f"{later[0]} after the acknowledged {acked}")
                if final_bytes[acked.offset:acked.end] != acked.raw + b"\n":
                    c.fail("acked-cut", job, i, f"the acknowledged {acked} is not in the final file")
        dup = [i for i, n in Counter(final_ids).items() if n > 1]
        for i in dup:
            c.fail("acked-again", job, i, "twice in the final output")
        # The final output is the job's deterministic order with gaps for items that left scope.
        pos = {i: k for k, i in enumerate(ref)}
        prev = -1
        for i in final_ids:
            k = pos.get(i)
            if k is None:
                continue  # reported as out-of-scope above (not in S0)
            if k <= prev:
                c.fail("order", job, i, f"at reference position {k} after position {prev}")
            prev = max(prev, k)
        seqs = [l["sequence"] for _, l in lines]
        for a, b in zip(seqs, seqs[1:]):
            if b <= a:
                c.fail("order", job, None, f"sequence {b} after {a} in the final output")
                break
        for i in sorted((s0 & seen) - final_set):
            if i not in known_final:
                c.fail("gap-not-final", job, i, "handed on, absent from the final output, but "
                       "never final remotely (pending/in_progress: it had to be redelivered)")
        # The reconciliation report: seen-but-not-final items, and unseen items that turned final
        # (the other writer) while dispatched-but-not-yet-written.
        rec = recon_by_job.get(job, set())
        should = (s0 & seen) - final_set
        for i in sorted(should - rec):
            c.fail("reconcile-report", job, i, "handed on, absent from the final output, not in "
                   "<out>.reconcile.ndjson")
        for i in sorted(rec & final_set):
            c.fail("reconcile-report", job, i, "reported for reconciliation but in the final output")
        for i in sorted(rec - should - final_set):
            if i not in ow or i in seen:
                c.fail("reconcile-report", job, i, "reported but never handed on and not finalised "
                       "by the other writer")
        unseen = s0 - seen
        reported_unseen = rec & unseen
        # Items the other writer finalised before any line of their job was seen: the stage's
        # first listing may have seen them final (never in scope) or not (in scope, skipped).
        early = {i for (j, i), v in world.other_writer.items() if j == job and v[3]}
        # Summary counters.
        sj = summary_jobs.get(job)
        if sj is None:
            c.fail("summary", job, None, "the final run's summary has no entry for the job")
        else:
            missing = [f for f in SUMMARY_FIELDS if f not in sj]
            if missing:
                c.skip("summary-counters", f"job {job[:8]}: summary lacks {', '.join(missing)}")
            else:
                got = {f: sj[f] for f in SUMMARY_FIELDS}
                if got["inScope"] != got["acked"] + got["skippedFinalRemotely"] + got["reported"]:
                    c.fail("summary-identity", job, None, f"inScope != acked + skippedFinalRemotely"
                           f" + reported: {got}")
                skipped = len(unseen) - len(reported_unseen)
                expect = {"inScope": len(s0), "acked": len(lines), "reported": len(rec),
                          "skippedFinalRemotely": skipped}
                for f, v in expect.items():
                    lo = v - len(early) if f in ("inScope", "skippedFinalRemotely") else v
                    if not lo <= got[f] <= v:
                        want = f"{v}" if lo == v else f"{lo}..{v} ({len(early)} finalised early)"
                        c.fail("summary-" + f, job, None, f"summary says {got[f]}, observed "
                               f"{want} (summary {got})")
                if got["inScope"] - got["skippedFinalRemotely"] != len(s0) - skipped:
                    c.fail("summary-inScope", job, None, "inScope - skippedFinalRemotely = "
                           f"{got['inScope'] - got['skippedFinalRemotely']}, observed "
                           f"|S0| - never handed on and not reported = {len(s0) - skipped}")
        stats["acked"] += len(lines)
        stats["reported"] += len(rec)
        stats["skipped"] += len(unseen - rec)
        stats["lost"] += len(lost)
        stats["other_writer"] += len(ow)
        stats["downstream_reported"] += len({i for (j, i) in world.reported if j == job})
        del known_final
    # Self-check: the simulator's per-item counters agree with what the harness's PUTs were
    # told (a disagreement is the harness's or the simulator's fault, not the stage's).
    for job in world.jobs if not world.sim.retried_writes else []:
        st, res = world.sim.request("GET", f"/sim/export-jobs/{job}/item-updates")
        if st != 200:
            raise HarnessError(f"item-updates of {job}: HTTP {st} {res}")
        sim_counts = {u["accountingEntryId"]: u["applied"] for u in res["data"]}
        mine = {i: n for (j, i), n in world.applied.items() if j == job}
        if sim_counts != mine:
            diff = sorted(set(sim_counts.items()) ^ set(mine.items()))[:3]
            raise HarnessError(f"{ep['out']}: simulator and harness disagree on the updates of "
                               f"job {job}: {diff}")
    if world.sim.retried_writes:
        c.skip("harness-sim-counters", f"{world.sim.retried_writes} PUT(s) retried after a "
               "transport error")
    verify = subprocess.run([args.bin, "state", "verify", "--state-dir", ep["state"]],
                            capture_output=True, text=True, timeout=120, env=tool_env())
    if verify.returncode != 0:
        c.fail("state-verify", None, None,
               f"exit {verify.returncode}: " + (verify.stdout + verify.stderr).strip()[:600])
    return c, stats


# --------------------------------------------------------------------------------------------
# Episodes


def reference_run(args, seed, ordering, workdir):
    """The uninterrupted still-world run: ({job: [ids in order]}, seconds)."""
    refdir = os.path.join(workdir, f"reference-{seed}-{ordering}")
    os.makedirs(refdir)
    sim = Sim(args, seed, refdir, None)
    try:
        jobs_file = os.path.join(refdir, "jobs.txt")
        with open(jobs_file, "w") as f:
            f.write("\n".join(print_jobs(args, seed)) + "\n")
        ep = {"state": os.path.join(refdir, "state"), "out": os.path.join(refdir, "out.ndjson"),
              "config": write_config(args, refdir)}
        env = tool_env()
        started = time.monotonic()
        p = subprocess.run(run_cmd(args.bin, args, ep, sim.url, jobs_file, ordering, "parallel"),
                           env=env, capture_output=True, text=True, timeout=args.run_timeout)
        duration = time.monotonic() - started
        if p.returncode != 0:
            raise StageError(f"the uninterrupted still-world run (kept in {refdir}) exit "
                             f"{p.returncode}: {p.stderr[-1500:]}")
        lines, problems = read_lines(ep["out"])
        if problems:
            raise StageError(f"the uninterrupted still-world run's output: {problems}")
        ref = defaultdict(list)
        for _, l in lines:
            ref[l["jobId"]].append(l["accountingEntryId"])
        return dict(ref), duration
    finally:
        sim.stop()


def write_config(args, d):
    path = os.path.join(d, "config.json")
    with open(path, "w") as f:
        json.dump({"credit_window": args.credit_window, "batch_size": args.batch_size,
                   "sort_run_items": args.sort_run_items}, f)
    return path


REFERENCES = {}  # (seed, ordering) -> ({job: [ids]}, seconds)


class Totals:
    def __init__(self):
        self.c = Counter()
        self.kill_phases = Counter()
        self.kill_points = Counter()
        self.skipped_checks = Counter()


def run_episode(args, n, rng, totals, cycles_left):
    ordering = args.orderings[(n - 1) % len(args.orderings)]
    listing = args.listings[((n - 1) // len(args.orderings)) % len(args.listings)]
    seed = args.seed + (n - 1) % args.seeds
    epdir = os.path.join(args.work, f"episode-{n}")
    os.makedirs(epdir)
    ep = {"state": os.path.join(epdir, "state"), "out": os.path.join(epdir, "out.ndjson"),
          "config": write_config(args, epdir)}
    label = f"episode {n} (seed {seed}, {ordering}, {listing} listing)"
    history = []
    if (seed, ordering) not in REFERENCES:
        try:
            REFERENCES[(seed, ordering)] = reference_run(args, seed, ordering, args.work)
        except StageError as e:
            return fail_episode(args, label, epdir, history, [("reference-run", None, None,
                                str(e))], totals)
    reference, ref_seconds = REFERENCES[(seed, ordering)]
    # Random kills land within about an uninterrupted run's duration (the world and the
    # faults make real runs slower), so that most of them interrupt something.
    kill_window = min(args.kill_window, max(0.05, 1.5 * ref_seconds))
    sim = Sim(args, seed, epdir, args.faults)
    kills = 0
    try:
        jobs = print_jobs(args, seed)
        jobs_file = os.path.join(epdir, "jobs.txt")
        with open(jobs_file, "w") as f:
            f.write("\n".join(jobs) + "\n")
        s0 = {}
        for job in jobs:
            s0[job] = {i["accountingEntryId"] for i in sim.list_items(job)
                       if i["status"] in ("pending", "in_progress")}
        world = World(args, rng, sim, jobs, s0, ep["out"])
        max_kills = rng.randint(1, args.max_kills)
        env = tool_env()
        completed = False
        final_summary = None
        run = 0
        while run < args.max_runs:
            run += 1
            run_env = dict(env)
            mode, binary, kill_at = "no kill", args.bin, None
            if kills < max_kills and kills < cycles_left:
                if rng.random() < 0.5:
                    point = CRASH_POINTS[totals.c["point_index"] % len(CRASH_POINTS)]
                    totals.c["point_index"] += 1
                    run_env["EI_CRASH_AT"] = f"{point}:{rng.randint(1, 4)}"
                    mode, binary = "EI_CRASH_AT=" + run_env["EI_CRASH_AT"], args.crash_bin
                else:
                    delay = rng.uniform(0.005, kill_window)
                    mode, kill_at = f"random kill after {delay:.3f} s", delay
            errpath = os.path.join(epdir, f"run-{run}.stderr")
            started = time.monotonic()
            with open(errpath, "w") as err:
                proc = subprocess.Popen(run_cmd(binary, args, ep, sim.url, jobs_file, ordering,
                                                listing), env=run_env, stdout=subprocess.DEVNULL,
                                        stderr=err, preexec_fn=die_with_parent)
            killed_by_us = hung = False
            try:
                while proc.poll() is None:
                    elapsed = time.monotonic() - started
                    if kill_at is not None and elapsed >= kill_at:
                        proc.send_signal(signal.SIGKILL)
                        killed_by_us = True
                        break
                    if elapsed > args.run_timeout:
                        proc.send_signal(signal.SIGKILL)
                        hung = True
                        break
                    world.step(run)
                    wait = args.poll_interval
                    if kill_at is not None:
                        wait = max(0.0, min(wait, kill_at - (time.monotonic() - started)))
                    time.sleep(wait)
                rc = proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=30)
            duration = time.monotonic() - started
            entry = {"run": run, "binary": os.path.basename(binary), "mode": mode, "exit": rc,
                     "seconds": round(duration, 3)}
            history.append(entry)
            if hung:
                entry["exit"] = "hung (killed after %.0f s)" % args.run_timeout
                world.tailer.poll(run, stable=True)
                return fail_episode(args, label, epdir, history, [("run-hung", None, None,
                                    f"run {run} did not end within {args.run_timeout} s")], totals)
            if rc == -signal.SIGKILL:
                kills += 1
                totals.c["cycles"] += 1
                totals.c["random_kills" if killed_by_us else "crash_point_kills"] += 1
                if not killed_by_us:
                    totals.kill_points[run_env["EI_CRASH_AT"].split(":")[0]] += 1
                status = job_status(args, ep["state"])
                phases = sorted(set(j.get("phase", "?") for j in status.values()
                                    if j.get("phase") != "complete")) or (
                    ["complete"] if status else ["no state yet"])
                entry["phases"] = phases
                for p in phases:
                    totals.kill_phases[p] += 1
                world.between(run, status)
                continue
            world.tailer.poll(run, stable=True)
            if rc != 0:
                with open(errpath) as f:
                    tail = f.read()[-1500:].strip()
                rows = [("run-exit", None, None, f"run {run} ({mode}) exit {rc}"
                         + (f": {tail}" if tail else ""))]
                try:
                    with open(ep["out"] + ".summary.json") as f:
                        for j in json.load(f).get("jobs", []):
                            if j.get("result") not in ("complete", "already_complete"):
                                rows.append(("run-exit", j.get("jobId"), None,
                                             f"result {j.get('result')}: {j.get('reason')}"))
                except (OSError, ValueError):
                    pass
                return fail_episode(args, label, epdir, history, rows, totals, world)
            completed = True
            try:
                with open(ep["out"] + ".summary.json") as f:
                    final_summary = json.load(f)
            except (OSError, ValueError) as e:
                return fail_episode(args, label, epdir, history, [("summary", None, None,
                                    f"unreadable summary: {e}")], totals, world)
            break
        if not completed:
            return fail_episode(args, label, epdir, history, [("never-completed", None, None,
                                f"no run exited 0 within {args.max_runs} runs")], totals, world)
        checks, stats = check_episode(args, ep, world, reference, final_summary)
    finally:
        sim.stop()
    totals.c["episodes"] += 1
    totals.c["runs"] += len(history)
    for k, v in stats.items():
        totals.c[k] += v
    for k, v in world.stats.items():
        totals.c["world_" + k] += v
    for name in set(name for name, _ in checks.skipped):
        totals.skipped_checks[name] += 1
    if args.verbose or checks.failures:
        print(f"{label}: " + "; ".join(f"run {h['run']} {h['mode']} -> {h['exit']}"
                                       for h in history), flush=True)
        print(f"  {len(history) - 1} kill(s); {stats['acked']} acked, {stats['redeliveries']} "
              f"flagged redeliveries, {stats['reported']} reported, {stats['skipped']} skipped, "
              f"{stats['other_writer']} finalised by another writer, lost {stats['lost']}, "
              f"unflagged repeats {stats['unflagged_repeats']}", flush=True)
        reasons = defaultdict(list)
        for name, reason in checks.skipped:
            reasons[name].append(reason)
        for name, rs in reasons.items():
            more = f" (and {len(rs) - 1} more)" if len(rs) > 1 else ""
            print(f"  SKIPPED {name}: {rs[0]}{more}", flush=True)
    if checks.failures:
        return fail_episode(args, label, epdir, history, checks.failures, totals, world,
                            counted=True)
    shutil.rmtree(epdir, ignore_errors=True)
    return True


def fail_episode(args, label, epdir, history, failures, totals, world=None, counted=False):
    if not counted:
        totals.c["episodes"] += 1
        totals.c["runs"] += len(history)
    totals.c["failed_episodes"] += 1
    print(f"FAIL: {label}: {len(failures)} problem(s); work directory kept: {epdir}", flush=True)
    by_check = defaultdict(list)
    for check, job, item, detail in failures:
        by_check[check].append((job, item, detail))
    for check, rows in by_check.items():
        print(f"  check {check}: {len(rows)}", flush=True)
        for job, item, detail in rows[:args.show]:
            where = " ".join(x for x in (f"job {job}" if job else "", f"item {item}" if item else "")
                             if x)
            print(f"    {where + ': ' if where else ''}{detail}", flush=True)
        if len(rows) > args.show:
            print(f"    ... {len(rows) - args.show} more", flush=True)
    print("  runs:", flush=True)
    for h in history:
        extra = f" phases after the kill: {','.join(h['phases'])}" if "phases" in h else ""
        print(f"    run {h['run']} [{h['binary']}] {h['mode']} -> exit {h['exit']} "
              f"({h['seconds']} s){extra}", flush=True)
    if world is not None:
        ow = Counter(v[2] + (" (job not started)" if v[3] else "")
                     for v in world.other_writer.values())
        print(f"  world: other writer {dict(ow)}; jobs completed remotely "
              f"{world.completed_jobs or 'none'}; {dict(world.stats)}", flush=True)
        with open(os.path.join(epdir, "world.json"), "w") as f:
            json.dump({"s0": {j: sorted(v) for j, v in world.s0.items()},
                       "other_writer": {f"{j} {i}": v for (j, i), v in world.other_writer.items()},
                       "downstream_outcomes": {f"{j} {i}": v for (j, i), v in
                                               world.outcome.items()},
                       "remote_final": {f"{j} {i}": v for (j, i), v in
                                        world.remote_final.items()},
                       "completed_jobs": world.completed_jobs,
                       "sightings": [[s.t, s.run, s.offset, s.job, s.id, s.sequence, s.attempt,
                                      s.redelivery, s.acked_at] for s in world.tailer.sightings],
                       "history": history}, f, indent=1)
    return False


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bin", required=True, help="export-items binary (normal runs, status, verify)")
    p.add_argument("--crash-bin", help="binary with crash points compiled in (default: --bin)")
    p.add_argument("--sim", required=True, help="export-items-sim binary")
    p.add_argument("--work", required=True, help="scratch directory (recreated)")
    p.add_argument("--cycles", type=int, default=100, help="kill cycles to run (default 100)")
    p.add_argument("--seed", type=int, default=1,
                   help="episode n uses simulator seed SEED + (n-1) %% SEEDS")
    p.add_argument("--seeds", type=int, default=8, help="distinct simulator seeds (default 8)")
    p.add_argument("--jobs", type=int, default=3)
    p.add_argument("--companies", type=int, default=3)
    p.add_argument("--items", type=int, default=600)
    p.add_argument("--page-size", type=int, default=100)
    p.add_argument("--max-jobs", type=int, default=2)
    p.add_argument("--ordering", default="both", help="chronological, entry_id or both")
    p.add_argument("--listing", default="both", help="parallel, cursor or both")
    p.add_argument("--credit-window", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--sort-run-items", type=int, default=128)
    p.add_argument("--faults", default="items:status=503@rate=0.03;items:reset_mid_body@rate=0.01;"
                                       "export_items:throttle=0@rate=0.02;items:truncate@rate=0.01")
    p.add_argument("--max-kills", type=int, default=4, help="kills per episode at most")
    p.add_argument("--kill-window", type=float, default=0.4, help="random kill delay bound (s)")
    p.add_argument("--poll-interval", type=float, default=0.01)
    p.add_argument("--downstream-rate", type=float, default=0.3,
                   help="chance per poll of a downstream write-back batch")
    p.add_argument("--other-writer-rate", type=float, default=0.05,
                   help="chance per poll of another writer finalising items")
    p.add_argument("--early-writer-share", type=float, default=0.3,
                   help="share of episodes whose other writer also acts on jobs being listed")
    p.add_argument("--complete-rate", type=float, default=0.3,
                   help="chance, between runs, of completing a fully acked job remotely")
    p.add_argument("--eager-share", type=float, default=0.35,
                   help="downstream: share of batches taken past the committed offset")
    p.add_argument("--fail-rate", type=float, default=0.15, help="downstream: share of failed")
    p.add_argument("--run-timeout", type=float, default=60.0)
    p.add_argument("--max-runs", type=int, default=30, help="runs per episode at most")
    p.add_argument("--stop-after", type=int, default=0, help="stop after N failed episodes (0: no)")
    p.add_argument("--show", type=int, default=5, help="rows shown per failed check")
    p.add_argument("--verbose", action="store_true", help="print every episode's runs")
    args = p.parse_args()
    args.crash_bin = args.crash_bin or args.bin
    args.orderings = ["chronological", "entry_id"] if args.ordering == "both" else [args.ordering]
    args.listings = ["parallel", "cursor"] if args.listing == "both" else [args.listing]

    # A SIGTERM (ctest, CI) unwinds through the `finally` blocks that stop the children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rng = random.Random(args.seed)
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    totals = Totals()
    started = time.monotonic()
    n = passed = failed = 0
    harness_error = None
    try:
        while totals.c["cycles"] < args.cycles:
            n += 1
            if n > 3 * args.cycles + 10:
                raise HarnessError(f"{n - 1} episodes gave only {totals.c['cycles']} kill cycles")
            if run_episode(args, n, rng, totals, args.cycles - totals.c["cycles"]):
                passed += 1
            else:
                failed += 1
                if args.stop_after and failed >= args.stop_after:
                    break
    except HarnessError as e:
        harness_error = str(e)
    c = totals.c
    print(f"live-world harness: {c['cycles']} kill cycles ({c['random_kills']} random, "
          f"{c['crash_point_kills']} at crash points) over {c['episodes']} episodes and {c['runs']}"
          f" runs in {time.monotonic() - started:.1f} s; orderings {'+'.join(args.orderings)}, "
          f"listings {'+'.join(args.listings)}")
    print(f"  kills by phase of the unfinished jobs: {dict(totals.kill_phases)}")
    print(f"  kills by crash point: {dict(sorted(totals.kill_points.items()))}")
    print(f"  checked episodes: {c['acked']} acked lines, {c['redeliveries']} flagged redeliveries,"
          f" {c['reported']} reported for reconciliation, {c['skipped']} skipped (final remotely,"
          f" never handed on), lost {c['lost']}, unflagged repeats {c['unflagged_repeats']}")
    print(f"  world: {c['world_puts']} PUTs, {c['downstream_reported']} items written back "
          f"({c['world_reported_before_ack']} lines before their ack, "
          f"{c['world_reported_after_ack']} after), {c['other_writer']} finalised by another "
          f"writer, {c['world_jobs_completed_remotely']} jobs completed remotely, "
          f"{c['world_put_rejected_final']} updates rejected as final")
    for name, count in sorted(totals.skipped_checks.items()):
        print(f"  SKIPPED check {name} in {count} episode(s) (not passed: the stage lacks it)")
    if harness_error:
        print(f"HARNESS ERROR (not a stage failure): {harness_error}")
        failed += 1
    print(f"{passed} passed, {failed} failed")
    if failed == 0:
        shutil.rmtree(args.work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
