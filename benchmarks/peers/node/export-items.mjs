#!/usr/bin/env node
// What a user would write instead of the stage: Node.js (built-in fetch, i.e. undici) with
// better-sqlite3@12 for state.
//
// For each job: page through GET /v3/export-jobs/{id}/items (cursor paging), keep the items in
// scope (pending, in_progress) and store them in SQLite with one transaction per page (WAL,
// synchronous=FULL). With --ordering chronological the data layer (GET /v3/export-items) is
// paged too, one transaction per page of dates. Then the items are written as NDJSON in order
// (by accountingEntryId, or by date then accountingEntryId, both by SQLite) in batches of 4096
// lines: write, fsync, then record the delivered count. A re-run resumes where it stopped.
//
// Usage: node export-items.mjs --base-url URL (--job ID ... | --jobs-file F) --state DB
//          --out FILE [--ordering entry_id|chronological] [--page-size 500]
// The API key comes from PLEO_API_KEY (Basic auth). Prints a JSON summary on stdout.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';

const IN_SCOPE = new Set(['pending', 'in_progress']);
const BATCH = 4096;

const { values: args } = parseArgs({
  options: {
    'base-url': { type: 'string' },
    job: { type: 'string', multiple: true, default: [] },
    'jobs-file': { type: 'string' },
    state: { type: 'string' },
    out: { type: 'string' },
    ordering: { type: 'string', default: 'chronological' },
    'page-size': { type: 'string', default: '500' },
  },
});
if (!args['base-url'] || !args.state || !args.out) {
  console.error('usage: export-items.mjs --base-url URL --job ID --state DB --out FILE');
  process.exit(2);
}
const key = process.env.PLEO_API_KEY;
if (!key) {
  console.error('PLEO_API_KEY is not set');
  process.exit(2);
}
const baseUrl = args['base-url'].replace(/\/$/, '');
const pageSize = Number(args['page-size']);
const auth = 'Basic ' + Buffer.from(key + ':').toString('base64');
let jobs = [...args.job];
if (args['jobs-file'])
  jobs = jobs.concat(fs.readFileSync(args['jobs-file'], 'utf8').split('\n').filter((l) => l.trim()));

let requests = 0;
async function get(path, params) {
  const url = new URL(baseUrl + path);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, String(v));
  for (let attempt = 0; ; ++attempt) {
    const res = await fetch(url, { headers: { authorization: auth, accept: 'application/json' } });
    ++requests;
    if ((res.status === 429 || res.status >= 500) && attempt < 5) {
      await res.arrayBuffer();
      await new Promise((r) => setTimeout(r, Math.min(10000, 100 * 2 ** attempt)));
      continue;
    }
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
    return res.json();
  }
}

async function* pages(path, params, after) {
  for (;;) {
    const q = { ...params, limit: pageSize };
    if (after) q.after = after;
    const page = await get(path, q);
    const p = page.pagination;
    after = p.hasNextPage ? p.endCursor : null;
    yield [page, after];
    if (!p.hasNextPage) return;
  }
}

const db = new Database(args.state);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec(`
CREATE TABLE IF NOT EXISTS jobs (
  job_id TEXT PRIMARY KEY, cursor TEXT, listed INTEGER NOT NULL DEFAULT 0,
  listing_done INTEGER NOT NULL DEFAULT 0, dates_cursor TEXT,
  dates_done INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS items (
  job_id TEXT NOT NULL, entry_id TEXT NOT NULL, status TEXT NOT NULL, exported_at TEXT,
  external_id TEXT, external_url TEXT, failure_reason TEXT, failure_reason_type TEXT,
  PRIMARY KEY (job_id, entry_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dates (
  job_id TEXT NOT NULL, entry_id TEXT NOT NULL, date TEXT NOT NULL,
  PRIMARY KEY (job_id, entry_id)) WITHOUT ROWID;`);

const addJob = db.prepare('INSERT OR IGNORE INTO jobs (job_id) VALUES (?)');
const jobRow = db.prepare('SELECT * FROM jobs WHERE job_id = ?');
const putItem = db.prepare('INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?,?,?)');
const putCursor = db.prepare(
  'UPDATE jobs SET cursor = ?, listed = listed + ?, listing_done = ? WHERE job_id = ?');
const putDate = db.prepare('INSERT OR REPLACE INTO dates VALUES (?,?,?)');
const putDatesCursor = db.prepare(
  'UPDATE jobs SET dates_cursor = ?, dates_done = ? WHERE job_id = ?');
// better-sqlite3 refuses writes on a connection while one of its queries is being iterated,
// so the delivered count goes through a second connection (WAL lets both work at once).
const progressDb = new Database(args.state);
progressDb.pragma('synchronous = FULL');
const putDelivered = progressDb.prepare('UPDATE jobs SET delivered = ? WHERE job_id = ?');

const storePage = db.transaction((job, data, after) => {
  for (const it of data)
    if (IN_SCOPE.has(it.status))
      putItem.run(job, it.accountingEntryId, it.status, it.exportedAt ?? null,
                  it.externalId ?? null, it.externalUrl ?? null, it.failureReason ?? null,
                  it.failureReasonType ?? null);
  putCursor.run(after, data.length, after === null ? 1 : 0, job);
});
const storeDates = db.transaction((job, data, after) => {
  for (const it of data) putDate.run(job, it.accountingEntryId, it.date);
  putDatesCursor.run(after, after === null ? 1 : 0, job);
});

function deliver(job, fd) {
  const delivered = jobRow.get(job).delivered;
  const query = args.ordering === 'chronological'
    ? db.prepare('SELECT i.* FROM items i JOIN dates d USING (job_id, entry_id) ' +
                 'WHERE i.job_id = ? ORDER BY d.date, i.entry_id LIMIT -1 OFFSET ?')
    : db.prepare('SELECT * FROM items WHERE job_id = ? ORDER BY entry_id LIMIT -1 OFFSET ?');
  let seq = delivered;
  let lines = [];
  const flush = () => {
    fs.writeSync(fd, lines.join(''));
    fs.fsyncSync(fd);
    lines = [];
    putDelivered.run(seq, job);
  };
  for (const r of query.iterate(job, delivered)) {
    ++seq;
    lines.push(JSON.stringify({
      jobId: job, accountingEntryId: r.entry_id, status: r.status, sequence: seq, attempt: 1,
      redelivery: false, exportedAt: r.exported_at, externalId: r.external_id,
      externalUrl: r.external_url, failureReason: r.failure_reason,
      failureReasonType: r.failure_reason_type,
    }) + '\n');
    if (lines.length === BATCH) flush();
  }
  flush();
  return seq;
}

const t0 = performance.now();
const fd = fs.openSync(args.out, 'a');
let listed = 0;
let emitted = 0;
for (const job of jobs) {
  addJob.run(job);
  let row = jobRow.get(job);
  if (!row.listing_done)
    for await (const [page, after] of pages(`/v3/export-jobs/${job}/items`, {}, row.cursor))
      storePage(job, page.data, after);
  if (args.ordering === 'chronological' && !row.dates_done)
    for await (const [page, after] of pages('/v3/export-items', { job_id: job }, row.dates_cursor))
      storeDates(job, page.data, after);
  emitted += deliver(job, fd);
  listed += jobRow.get(job).listed;
}
fs.closeSync(fd);
progressDb.close();
db.close();
console.log(JSON.stringify({ jobs: jobs.length, listed, emitted, requests,
                             seconds: (performance.now() - t0) / 1000 }));
