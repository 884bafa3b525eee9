#!/usr/bin/env python3
"""What a user would write instead of the stage: Python 3 with Debian's `requests`, `json`
and `sqlite3`.

For each job: page through GET /v3/export-jobs/{id}/items (cursor paging, or parallel offset
paging with --listing parallel), keep the items in scope (pending, in_progress), and store them
in SQLite with one transaction per page (WAL, synchronous=FULL: every page is on disk when its
transaction commits). With --ordering chronological the data layer (GET /v3/export-items) is
paged too and each page's dates go in, one transaction per page. Then the items are written as
NDJSON in order (by accountingEntryId, or by date then accountingEntryId, both by SQLite), in
batches of 4096 lines: write, flush, fsync, then record the delivered count in SQLite. A re-run
resumes from the stored cursor and the delivered count.

Usage: export_items.py --base-url URL (--job ID ... | --jobs-file F) --state DB --out FILE
                       [--ordering entry_id|chronological] [--page-size 500]
                       [--listing cursor|parallel] [--concurrency 16]
                       [--write-back [--in-flight 4]]
The API key comes from PLEO_API_KEY (Basic auth). Prints a JSON summary on stdout.
"""
import argparse
import json
import os
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import requests

IN_SCOPE = ("pending", "in_progress")
BATCH = 4096
TRACKING = ("exportedAt", "externalId", "externalUrl", "failureReason", "failureReasonType")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  job_id TEXT PRIMARY KEY, cursor TEXT, listed INTEGER NOT NULL DEFAULT 0,
  listing_done INTEGER NOT NULL DEFAULT 0, dates_cursor TEXT,
  dates_done INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS items (
  job_id TEXT NOT NULL, entry_id TEXT NOT NULL, status TEXT NOT NULL, exported_at TEXT,
  external_id TEXT, external_url TEXT, failure_reason TEXT, failure_reason_type TEXT,
  PRIMARY KEY (job_id, entry_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outcomes (
  job_id TEXT NOT NULL, entry_id TEXT NOT NULL, body TEXT NOT NULL,
  state TEXT NOT NULL, error TEXT, PRIMARY KEY (job_id, entry_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS completions (job_id TEXT PRIMARY KEY, event TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dates (
  job_id TEXT NOT NULL, entry_id TEXT NOT NULL, date TEXT NOT NULL,
  PRIMARY KEY (job_id, entry_id)) WITHOUT ROWID;
"""


class Api:
    def __init__(self, base_url, key, page_size):
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.page_size = page_size
        self.local = threading.local()
        self.requests = 0

    def session(self):
        s = getattr(self.local, "session", None)
        if s is None:
            s = requests.Session()
            s.auth = (self.key, "")
            self.local.session = s
        return s

    def get(self, path, params):
        for attempt in range(6):
            r = self.session().get(self.base_url + path, params=params, timeout=60)
            self.requests += 1
            if r.status_code == 429 or r.status_code >= 500:
                time.sleep(min(10.0, 0.1 * 2 ** attempt))
                continue
            r.raise_for_status()
            return r.json()
        r.raise_for_status()
        raise RuntimeError(f"GET {path}: retries exhausted")

    def send(self, method, path, body):
        """PUT/POST a JSON body (already encoded) with the same retries as get()."""
        for attempt in range(6):
            r = self.session().request(method, self.base_url + path, data=body, timeout=60,
                                       headers={"Content-Type": "application/json"})
            self.requests += 1
            if r.status_code == 429 or r.status_code >= 500:
                time.sleep(min(10.0, 0.1 * 2 ** attempt))
                continue
            r.raise_for_status()
            return r.json() if r.content else None
        r.raise_for_status()
        raise RuntimeError(f"{method} {path}: retries exhausted")

    def pages(self, path, params, after=None):
        """Cursor paging from `after`: yields (page, next_cursor)."""
        while True:
            q = dict(params, limit=self.page_size)
            if after:
                q["after"] = after
            page = self.get(path, q)
            p = page["pagination"]
            after = p.get("endCursor") if p["hasNextPage"] else None
            yield page, after
            if not p["hasNextPage"]:
                return

    def offset_pages(self, path, params, concurrency):
        """Parallel offset paging: the first page gives `total`, the rest go N at a time.
        Returns every page's data, or None when the result does not add up (count != total
        or duplicate ids), in which case the caller falls back to cursor paging."""
        first = self.get(path, dict(params, limit=self.page_size, offset=0))
        total = first["pagination"].get("total")
        if total is None:
            return None
        offsets = range(self.page_size, total, self.page_size)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            rest = list(pool.map(
                lambda off: self.get(path, dict(params, limit=self.page_size, offset=off)),
                offsets))
        pages = [first["data"]] + [p["data"] for p in rest]
        ids = set()
        count = 0
        for data in pages:
            for it in data:
                ids.add(it["accountingEntryId"])
                count += 1
        if count != total or len(ids) != total:
            return None
        return pages


def list_job(api, db, job, args):
    path = f"/v3/export-jobs/{job}/items"
    row = db.execute("SELECT cursor, listing_done FROM jobs WHERE job_id=?", (job,)).fetchone()
    if row[1]:
        return

    def store(data, cursor, done):
        rows = [(job, it["accountingEntryId"], it["status"], *(it.get(f) for f in TRACKING))
                for it in data if it["status"] in IN_SCOPE]
        with db:  # one transaction per page
            db.executemany("INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?,?,?)", rows)
            db.execute("UPDATE jobs SET cursor=?, listed=listed+?, listing_done=? WHERE job_id=?",
                       (cursor, len(data), int(done), job))

    if args.listing == "parallel" and row[0] is None:
        pages = api.offset_pages(path, {}, args.concurrency)
        if pages is not None:
            for i, data in enumerate(pages):
                store(data, None, i == len(pages) - 1)
            return
        print(f"job {job}: offset listing did not add up, cursor paging instead",
              file=sys.stderr)
    for page, after in api.pages(path, {}, row[0]):
        store(page["data"], after, after is None)


def list_dates(api, db, job):
    row = db.execute("SELECT dates_cursor, dates_done FROM jobs WHERE job_id=?", (job,)).fetchone()
    if row[1]:
        return
    for page, after in api.pages("/v3/export-items", {"job_id": job}, row[0]):
        rows = [(job, it["accountingEntryId"], it["date"]) for it in page["data"]]
        with db:
            db.executemany("INSERT OR REPLACE INTO dates VALUES (?,?,?)", rows)
            db.execute("UPDATE jobs SET dates_cursor=?, dates_done=? WHERE job_id=?",
                       (after, int(after is None), job))


def deliver(db, job, out, ordering):
    delivered = db.execute("SELECT delivered FROM jobs WHERE job_id=?", (job,)).fetchone()[0]
    if ordering == "chronological":
        query = ("SELECT i.* FROM items i JOIN dates d USING (job_id, entry_id) "
                 "WHERE i.job_id=? ORDER BY d.date, i.entry_id LIMIT -1 OFFSET ?")
    else:
        query = "SELECT * FROM items WHERE job_id=? ORDER BY entry_id LIMIT -1 OFFSET ?"
    seq = delivered
    lines = []

    def flush():
        out.write("".join(lines))
        out.flush()
        os.fsync(out.fileno())
        lines.clear()
        with db:
            db.execute("UPDATE jobs SET delivered=? WHERE job_id=?", (seq, job))

    for r in db.execute(query, (job, delivered)):
        seq += 1
        lines.append(json.dumps({
            "jobId": job, "accountingEntryId": r[1], "status": r[2], "sequence": seq,
            "attempt": 1, "redelivery": False, "exportedAt": r[3], "externalId": r[4],
            "externalUrl": r[5], "failureReason": r[6], "failureReasonType": r[7]}) + "\n")
        if len(lines) == BATCH:
            flush()
    flush()
    return seq


def write_back(api, db, job, in_flight):
    """The ERP stand-in's outcomes for every delivered item, recorded, PUT in batches of 100
    with `in_flight` requests in flight, then the job's completion event. Returns counts."""
    done = db.execute("SELECT event FROM completions WHERE job_id=?", (job,)).fetchone()
    if done:
        return {"puts": 0, "updated": 0, "errors": 0, "event": done[0] + " (recorded earlier)"}
    with db:  # recorded before anything is sent (a re-run sends only what is not reported)
        rows = db.execute("SELECT entry_id FROM items WHERE job_id=? ORDER BY entry_id",
                          (job,)).fetchall()
        db.executemany(
            "INSERT OR IGNORE INTO outcomes VALUES (?,?,?,'recorded',NULL)",
            ((job, r[0], json.dumps({
                "accountingEntryId": r[0], "status": "successful",
                "exportedAt": "2026-11-30T12:00:00Z", "externalId": f"JE-{seq}",
                "externalUrl": f"https://erp.example/je/{seq}"}, separators=(",", ":")))
             for seq, r in enumerate(rows, 1)))
    todo = db.execute("SELECT entry_id, body FROM outcomes WHERE job_id=? AND state='recorded' "
                      "ORDER BY entry_id", (job,)).fetchall()
    batches = [todo[i:i + 100] for i in range(0, len(todo), 100)]
    path = f"/v3/export-jobs/{job}/items"
    puts = updated = errors = 0
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        futures = {pool.submit(api.send, "PUT", path,
                               "[" + ",".join(b for _, b in batch) + "]"): batch
                   for batch in batches}
        for f in as_completed(futures):
            answer = f.result()
            puts += 1
            ok = [(job, it["accountingEntryId"]) for it in answer["data"]]
            bad = [(e.get("type"), job, e["accountingEntryId"]) for e in answer["errors"]]
            updated += len(ok)
            errors += len(bad)
            with db:  # one transaction per answer
                db.executemany("UPDATE outcomes SET state='reported' WHERE job_id=? AND "
                               "entry_id=?", ok)
                db.executemany("UPDATE outcomes SET state='rejected', error=? WHERE job_id=? "
                               "AND entry_id=?", bad)
    left = db.execute("SELECT count(*) FROM outcomes WHERE job_id=? AND state='recorded'",
                      (job,)).fetchone()[0]
    if left:
        raise RuntimeError(f"job {job}: {left} outcomes neither reported nor rejected")
    rejected = db.execute("SELECT count(*) FROM outcomes WHERE job_id=? AND state='rejected'",
                          (job,)).fetchone()[0]
    event = "completed_with_errors" if rejected else "completed"
    api.send("POST", "/v3/export-job-events", json.dumps({"jobId": job, "event": event}))
    with db:
        db.execute("INSERT INTO completions VALUES (?,?)", (job, event))
    return {"puts": puts, "updated": updated, "errors": errors, "event": event}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--job", action="append", default=[])
    ap.add_argument("--jobs-file")
    ap.add_argument("--state", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ordering", choices=("entry_id", "chronological"), default="chronological")
    ap.add_argument("--page-size", type=int, default=500)
    ap.add_argument("--listing", choices=("cursor", "parallel"), default="cursor")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--write-back", action="store_true",
                    help="answer every item (successful), PUT the outcomes, complete the job")
    ap.add_argument("--in-flight", type=int, default=4, help="PUT requests in flight")
    args = ap.parse_args()
    jobs = list(args.job)
    if args.jobs_file:
        with open(args.jobs_file) as f:
            jobs += [line.strip() for line in f if line.strip()]
    key = os.environ.get("PLEO_API_KEY")
    if not key:
        sys.exit("PLEO_API_KEY is not set")

    t0 = time.monotonic()
    api = Api(args.base_url, key, args.page_size)
    db = sqlite3.connect(args.state, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    db.isolation_level = ""  # `with db:` opens and commits a transaction
    emitted = listed = 0
    written_back = []
    with open(args.out, "a", encoding="utf-8") as out:
        for job in jobs:
            with db:
                db.execute("INSERT OR IGNORE INTO jobs (job_id) VALUES (?)", (job,))
            list_job(api, db, job, args)
            if args.ordering == "chronological":
                list_dates(api, db, job)
            emitted += deliver(db, job, out, args.ordering)
            listed += db.execute("SELECT listed FROM jobs WHERE job_id=?", (job,)).fetchone()[0]
    if args.write_back:  # after the output is complete and durable, as `report` runs after `run`
        for job in jobs:
            written_back.append(dict(write_back(api, db, job, args.in_flight), jobId=job))
    db.close()
    summary = {"jobs": len(jobs), "listed": listed, "emitted": emitted,
               "requests": api.requests, "seconds": time.monotonic() - t0}
    if args.write_back:
        summary["writeBack"] = written_back
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
