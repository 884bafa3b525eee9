// libFuzzer target: the record decoders of storage/detail/layout.hpp on arbitrary bytes
// (README.md). Values come from disk, so the decoders treat them as untrusted: every input goes
// to every decoder, which must not crash, read out of bounds (ASan) or allocate beyond the
// value's size (-rss_limit_mb / -malloc_limit_mb). What a decoder accepts must survive
// decode -> encode -> decode unchanged, and fixed-width records re-encode to the same bytes.
//
// `state_record_fuzz --write-seeds DIR` writes one valid record of each kind to DIR (the seed
// corpus in corpus/state_record/ was made this way) and exits.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "storage/detail/layout.hpp"

namespace {

using namespace ei;
using namespace ei::storage;
using namespace ei::storage::detail;

[[noreturn]] void broken(const char* promise, std::string_view why = {}) {
  std::fprintf(stderr, "state_record_fuzz: %s\n", promise);
  if (!why.empty()) std::fprintf(stderr, "  %.*s\n", static_cast<int>(why.size()), why.data());
  __builtin_trap();
}

// A failure message names what was wrong; it must exist and stay small whatever the input.
void check_failure(const std::string& why) {
  if (why.size() > 256) broken("failure message longer than 256 bytes", why);
}

template <class T, class Decode, class Encode>
void round_trip(std::string_view in, Decode decode, Encode encode, bool exact, const char* what) {
  T first{};
  const std::string why = decode(in, first);
  if (!why.empty()) return check_failure(why);
  std::string bytes;
  encode(first, bytes);
  if (exact && bytes != in) broken(what, "re-encoding changed the bytes");
  T second{};
  if (const std::string again = decode(bytes, second); !again.empty())
    broken(what, "its own encoding does not decode: " + again);
  if (!(first == second)) broken(what, "decode -> encode -> decode changed the value");
}

void fuzz_page(std::string_view in) {
  page_record first;
  std::vector<std::size_t> flagged;
  const std::string why = decode_page(in, first, flagged);
  if (!why.empty()) return check_failure(why);
  for (std::size_t i : flagged) {
    if (i >= first.items.size()) broken("page: flagged index out of range");
    first.items[i].tracking.external_id = "x";  // encode_page flags items with tracking
  }
  std::string bytes;
  encode_page(first, bytes);
  page_record second;
  std::vector<std::size_t> flagged_again;
  if (const std::string again = decode_page(bytes, second, flagged_again); !again.empty())
    broken("page", "its own encoding does not decode: " + again);
  if (flagged_again != flagged) broken("page", "tracking flags changed");
  for (std::size_t i : flagged)
    second.items[i].tracking.external_id = "x";
  if (!(first == second)) broken("page", "decode -> encode -> decode changed the value");
}

// One valid record of each kind, as the store writes them.
std::vector<std::pair<std::string, std::string>> seeds() {
  api::uuid a;
  api::uuid b;
  for (std::uint8_t i = 0; i < 16; ++i) {
    a.bytes[i] = static_cast<std::uint8_t>(0x11 * (i % 15 + 1));
    b.bytes[i] = static_cast<std::uint8_t>(0xa0 + i);
  }
  std::vector<std::pair<std::string, std::string>> out;
  std::string v;

  job_record job;
  job.company_id = a;
  job.phase = job_phase::dispatching;
  job.ordering = ordering_mode::chronological;
  job.runs = 3;
  job.listing_epoch = 1;
  job.pages_committed = 42;
  job.next_cursor = "GEZDGNBVGY3TQOJQ";
  job.listing_complete = true;
  job.order_size = 4100;
  job.counters.listed = 4200;
  job.counters.pages = 42;
  job.counters.duplicates = 2;
  job.counters.in_scope = 4100;
  job.counters.needs_reconciliation = 1;
  job.counters.redelivered = 7;
  job.counters.by_remote_status = {4100, 0, 50, 48, 1, 1};
  job.failure_code = "";
  job.failure_message = "";
  job.created_ms = 1'700'000'000'000;
  job.updated_ms = -5;
  encode_job(job, v);
  out.emplace_back("job_record", v);
  job.phase = job_phase::failed;
  job.failure_code = "api_rejected";
  job.failure_message = "GET /v3/export-jobs/x/items: HTTP 404";
  encode_job(job, v);
  out.emplace_back("job_record_failed", v);

  encode_watermarks(watermarks{4100, 4000}, v);
  out.emplace_back("watermarks", v);

  page_record page;
  page.request_cursor = "GEZDGNBV";
  page.next_cursor = "GEZDGNBVGY";
  page.has_next = true;
  listed_item plain;
  plain.id = a;
  plain.remote_status = api::item_status::pending;
  listed_item tracked;
  tracked.id = b;
  tracked.remote_status = api::item_status::failed;
  tracked.tracking.failure_reason = "rejected";
  listed_item odd;
  odd.id = b;
  odd.id.bytes[0] = 0;
  odd.remote_status = api::item_status::unknown;
  odd.status_text = "on_hold";
  page.items = {plain, tracked, odd};
  encode_page(page, v);
  out.emplace_back("page_record", v);

  api::tracking_fields tracking;
  tracking.exported_at = "2024-01-02T03:04:05Z";
  tracking.external_id = "INV-1";
  tracking.failure_reason_type = "";
  encode_tracking(tracking, v);
  out.emplace_back("tracking", v);

  std::vector<order_entry> chunk(5);
  for (std::size_t i = 0; i < chunk.size(); ++i) {
    chunk[i].id = a;
    chunk[i].id.bytes[15] = static_cast<std::uint8_t>(i);
    chunk[i].remote_status = static_cast<api::item_status>(i % 6);
    chunk[i].has_tracking = i % 2 == 1;
  }
  encode_order_chunk(chunk, v);
  out.emplace_back("order_chunk", v);

  encode_attempt(3, v);
  out.emplace_back("attempt", v);
  encode_sink_offset(123'456'789, v);
  out.emplace_back("sink_offset", v);
  return out;
}

int write_seeds(const char* dir) {
  for (const auto& [name, bytes] : seeds()) {
    const std::string file = std::string(dir) + "/" + name + ".bin";
    std::ofstream os(file, std::ios::binary | std::ios::trunc);
    os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!os) {
      std::fprintf(stderr, "state_record_fuzz: cannot write %s\n", file.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  // libFuzzer calls this before it parses its own flags.
  for (int i = 1; i + 1 < *argc; ++i)
    if (std::strcmp((*argv)[i], "--write-seeds") == 0) std::exit(write_seeds((*argv)[i + 1]));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  round_trip<job_record>(in, decode_job, encode_job, false, "job record");
  round_trip<watermarks>(in, decode_watermarks, encode_watermarks, true, "watermarks");
  round_trip<api::tracking_fields>(in, decode_tracking, encode_tracking, false, "tracking");
  fuzz_page(in);
  round_trip<std::vector<order_entry>>(
      in, decode_order_chunk,
      [](const std::vector<order_entry>& e, std::string& out) { encode_order_chunk(e, out); }, true,
      "order chunk");
  round_trip<std::uint32_t>(in, decode_attempt, encode_attempt, true, "attempt");
  round_trip<std::uint64_t>(in, decode_sink_offset, encode_sink_offset, true, "sink offset");
  return 0;
}
