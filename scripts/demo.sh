#!/usr/bin/env bash
# make demo: the whole stage against the embedded simulator (several companies, several jobs
# with mixed statuses). In-progress jobs complete; jobs that are not in progress fail alone
# with a clear reason; a second run is a no-op for completed jobs.
set -euo pipefail
build=${1:-build/release}
bin="$build/apps/export-items"
sim="$build/simulator/export-items-sim"
out_dir=${DEMO_DIR:-out/demo}
rm -rf "$out_dir"
mkdir -p "$out_dir"

# The same seed and shape as configs/embedded.json, to list the jobs the embedded API holds.
"$sim" --print-jobs --seed 42 --companies 4 --jobs 15 --items 20000 --api-key demo \
  | sed -n 's/.*"id": "\([0-9a-f-]*\)".*/\1/p' > "$out_dir/jobs.txt"
echo "demo: $(wc -l < "$out_dir/jobs.txt") jobs over 4 companies in the embedded simulator"

set +e
"$bin" run --config configs/embedded.json --jobs-file "$out_dir/jobs.txt" \
  --state-dir "$out_dir/state" --out "$out_dir/items.ndjson" --summary "$out_dir/summary.json"
rc=$?
set -e
if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
  echo "demo: export-items run failed (exit $rc)" >&2
  exit "$rc"
fi
python3 - "$out_dir/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"demo: {s['totals']['complete']} jobs complete, {s['totals']['failed']} failed, "
      f"{s['totals']['emitted']} items handed on in {s['totals']['durationSeconds']:.2f} s")
for j in s["jobs"]:
    if j["result"] == "failed":
        print(f"  {j['jobId']}: {j['reasonCode']}: {j['reason']}")
    else:
        print(f"  {j['jobId']}: {j['result']}: listed {j['listed']}, in scope {j['inScope']}, "
              f"emitted {j['emitted']}")
PY
echo "demo: items in $out_dir/items.ndjson ($(wc -l < "$out_dir/items.ndjson") lines), summary in $out_dir/summary.json"
echo "demo: state of the store:"
"$bin" status --state-dir "$out_dir/state"
echo "demo: running again (completed jobs are a no-op):"
set +e
"$bin" run --config configs/embedded.json --jobs-file "$out_dir/jobs.txt" --quiet \
  --state-dir "$out_dir/state" --out "$out_dir/items.ndjson" --summary "$out_dir/summary-rerun.json"
set -e
python3 -c "import json,sys; s=json.load(open('$out_dir/summary-rerun.json')); print('demo: second run:', s['totals']['alreadyComplete'], 'already complete,', s['totals']['emitted'], 'items handed on')"
echo "demo: $(wc -l < "$out_dir/items.ndjson") lines in the output after the second run"

# Closing the loop (docs/write-back.md): a simulator of its own, the stage's items piped through
# a stand-in ERP step that answers each item with an outcome, written back to Pleo by
# `export-items report`, which completes each job once all its items are reported.
loop_dir="$out_dir/loop"
mkdir -p "$loop_dir"
loop_key=demo-loop-key
"$sim" --port 0 --api-key "$loop_key" --seed 7 --companies 2 --jobs 3 --items 500 \
  --all-in-progress > "$loop_dir/sim.txt" 2> "$loop_dir/sim.log" &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q '^listening on ' "$loop_dir/sim.txt" 2>/dev/null && break
  sleep 0.05
done
url="http://$(sed -n 's/^listening on //p' "$loop_dir/sim.txt")"
echo "demo: closing the loop against a simulator at $url (3 jobs, 2 companies)"
PLEO_API_KEY=$loop_key "$bin" run --base-url "$url" --discover --state-dir "$loop_dir/state" \
    --out - --quiet --summary "$loop_dir/run-summary.json" \
  | python3 -c '
import json, sys
# A stand-in ERP step: books each item and answers with its outcome (in the first job it sees,
# every 20th item fails: that job ends completed_with_errors, the others completed).
first_job = None
for n, line in enumerate(sys.stdin, 1):
    item = json.loads(line)
    first_job = first_job or item["jobId"]
    out = {"jobId": item["jobId"], "accountingEntryId": item["accountingEntryId"]}
    if item["jobId"] == first_job and n % 20 == 0:
        out.update(status="failed", failureReasonType="tax_code_unknown",
                   failureReason="tax code S20 is not known to the ERP")
    else:
        out.update(status="successful", externalId=f"JE-{n}",
                   externalUrl=f"https://erp.example/je/{n}", exportedAt="2026-11-30T12:00:00Z")
    print(json.dumps(out), flush=True)
' \
  | PLEO_API_KEY=$loop_key "$bin" report --state-dir "$loop_dir/state" --outcomes - \
      --base-url "$url" --complete-jobs --summary "$loop_dir/report-summary.json"
PLEO_API_KEY=$loop_key python3 - "$url" "$loop_dir/report-summary.json" <<'PY'
import base64, json, os, sys, urllib.request
for j in json.load(open(sys.argv[2]))["jobs"]:
    print(f"demo: {j['jobId']}: {j['reported']} outcomes written back ({j['successful']} "
          f"successful, {j['failed']} failed) in {j['requests']} PUTs; sent {j['completion']}")
auth = base64.b64encode((os.environ["PLEO_API_KEY"] + ":").encode()).decode()
req = urllib.request.Request(sys.argv[1] + "/v3/export-jobs?limit=100",
                             headers={"Authorization": "Basic " + auth})
jobs = json.load(urllib.request.urlopen(req, timeout=10))["data"]
print("demo: the jobs in Pleo (the simulator) now:")
for j in jobs:
    print(f"  {j['id']}: {j['status']}")
PY
kill "$sim_pid" 2>/dev/null || true
wait "$sim_pid" 2>/dev/null || true
trap - EXIT
