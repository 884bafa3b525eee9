#!/usr/bin/env python3
"""export-items for operators (issue 12 part 6), run as a user runs it:

- `--metrics-file` holds OpenMetrics text that prometheus_client's OpenMetrics parser accepts,
  with the families docs/operations.md names and counts that agree with the summary;
- with `--log-format json` every stderr line is a JSON object with time, level and event, and
  the job events carry the job id (and company id);
- the embedded simulator's API key appears in none of it;
- bad `--log-format` / `--log-level` values are usage errors (exit 2) naming the flag.

Usage: operators_test.py <export-items binary>. Takes a few seconds.
"""
import base64
import json
import os
import re
import subprocess
import sys
import tempfile

from prometheus_client.openmetrics.parser import text_string_to_metric_families

SECRET = "ops-test-secret-key-6e1c"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(binary, args, cwd):
    return subprocess.run([binary] + args, cwd=cwd, capture_output=True, text=True, timeout=60)


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="ei-operators-") as d:
        with open(os.path.join(d, "cfg.json"), "w") as f:
            json.dump({
                "base_url": "embedded", "page_size": 100, "max_jobs": 3,
                "scheduler_threads": 2, "fetchers": 2,
                "http": {"max_attempts": 6, "backoff_base_ms": 10, "backoff_cap_ms": 100,
                         "adaptive_rate": False, "retry_after_cap_ms": 50},
                "embedded": {"seed": 11, "companies": 2, "jobs": 5, "items_per_job": 400,
                             "all_in_progress": True, "api_key": SECRET,
                             "faults": "items:status=503@every=7; items:throttle=1@nth=3"},
            }, f)
        r = run(binary, ["run", "--config", "cfg.json", "--discover", "--state-dir", "st",
                         "--out", "items.ndjson", "--summary", "summary.json", "--quiet",
                         "--metrics-file", "export_items.prom",
                         "--log-format", "json", "--log-level", "debug"], d)
        check(r.returncode == 0, f"run exits 0 (got {r.returncode}): {r.stderr[-2000:]}")
        summary = json.load(open(os.path.join(d, "summary.json")))
        metrics_text = open(os.path.join(d, "export_items.prom")).read()
        check(not os.path.exists(os.path.join(d, "export_items.prom.tmp")), "no .tmp left")

        # --- the metrics file: an OpenMetrics parser accepts it --------------------------
        families = {f.name: f for f in text_string_to_metric_families(metrics_text)}

        def value(family, sample, **labels):
            for s in families[family].samples:
                if s.name == sample and s.labels == labels:
                    return s.value
            raise KeyError(f"{sample}{labels}")

        for name, kind in [("export_items_jobs_finished", "counter"),
                           ("export_items_job_failures", "counter"),
                           ("export_items_items_handed_on", "counter"),
                           ("export_items_items_acked", "counter"),
                           ("export_items_http_responses", "counter"),
                           ("export_items_http_throttled", "counter"),
                           ("export_items_http_retries", "counter"),
                           ("export_items_http_received_bytes", "counter"),
                           ("export_items_job_duration_seconds", "summary"),
                           ("export_items_run_duration_seconds", "gauge"),
                           ("export_items_last_success_timestamp_seconds", "gauge")]:
            check(name in families and families[name].type == kind, f"{name} is a {kind}")
        if not failures:
            totals = summary["totals"]
            check(value("export_items_jobs_finished", "export_items_jobs_finished_total",
                        result="complete") == totals["complete"] == 5,
                  "jobs complete: metrics = summary = 5")
            emitted = totals["emitted"]
            lines = sum(1 for _ in open(os.path.join(d, "items.ndjson")))
            check(value("export_items_items_handed_on", "export_items_items_handed_on_total")
                  == emitted == lines, f"items handed on = summary emitted = lines ({lines})")
            check(value("export_items_items_acked", "export_items_items_acked_total") == emitted,
                  "every item handed on is acked")
            check(value("export_items_http_responses", "export_items_http_responses_total",
                        **{"class": "5xx"}) > 0, "503 faults counted as 5xx")
            check(value("export_items_http_throttled", "export_items_http_throttled_total") >= 1,
                  "the throttle fault counted as a 429")
            check(value("export_items_http_retries", "export_items_http_retries_total") >= 1,
                  "retries counted")
            check(value("export_items_run_in_progress", "export_items_run_in_progress") == 0,
                  "the final file says the run ended")
            check(value("export_items_last_success_timestamp_seconds",
                        "export_items_last_success_timestamp_seconds") > 1.7e9,
                  "a last success timestamp")

        # --- the log: one JSON object a line ---------------------------------------------
        events = {}
        for line in r.stderr.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                check(False, f"stderr line is not JSON: {line!r}")
                continue
            check(isinstance(obj, dict), f"a JSON object: {line!r}")
            check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", obj.get("time", "")),
                  f"an ISO-8601 UTC time: {line!r}")
            check(obj.get("level") in ("trace", "debug", "info", "warn", "error"),
                  f"a level: {line!r}")
            check("event" in obj, f"an event: {line!r}")
            events.setdefault(obj.get("event"), []).append(obj)
            if obj.get("event") in ("job_started", "phase_changed", "job_completed",
                                    "job_failed"):
                check(re.fullmatch(r"[0-9a-f-]{36}", obj.get("jobId", "")),
                      f"a job event carries the job id: {line!r}")
                check(re.fullmatch(r"[0-9a-f-]{36}", obj.get("companyId", "")),
                      f"a job event carries the company id: {line!r}")
        check(len(events.get("job_started", [])) == 5, "five job_started")
        check(len(events.get("job_completed", [])) == 5, "five job_completed")
        check(any(e.get("phase") == "dispatching" for e in events.get("phase_changed", [])),
              "phase_changed to dispatching at debug")

        # --- no secret anywhere ----------------------------------------------------------
        encoded = base64.b64encode((SECRET + ":").encode()).decode()
        for name, text in [("stderr", r.stderr), ("stdout", r.stdout),
                           ("metrics", metrics_text),
                           ("summary", open(os.path.join(d, "summary.json")).read()),
                           ("items", open(os.path.join(d, "items.ndjson")).read())]:
            check(SECRET not in text and encoded not in text, f"no API key in {name}")

        # --- usage errors name the flag; the flags work before the subcommand too --------
        bad = run(binary, ["run", "--config", "cfg.json", "--discover", "--state-dir", "st2",
                           "--log-format", "xml"], d)
        check(bad.returncode == 2 and "--log-format" in bad.stderr,
              f"--log-format xml: exit 2 naming the flag ({bad.returncode}: {bad.stderr})")
        check(not os.path.exists(os.path.join(d, "st2")), "a usage error creates nothing")
        bad = run(binary, ["--log-level", "loud", "status", "--state-dir", "st"], d)
        check(bad.returncode == 2 and "--log-level" in bad.stderr,
              f"--log-level loud: exit 2 naming the flag ({bad.returncode}: {bad.stderr})")
        ok = run(binary, ["--log-format", "json", "status", "--state-dir", "st", "--json"], d)
        check(ok.returncode == 0 and len(json.loads(ok.stdout)) == 5,
              f"status with the log flags before it ({ok.returncode}: {ok.stderr})")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("operators_test: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
