// The error vocabulary (actors/errors.hpp) and the protocol's inspect overloads: every code of
// every component's enum has text that is non-empty and unique and a category the actor
// system renders, no code lies beyond the enum's `last` (a code added without text, or after
// `last`, fails here), the job failure texts the summary prints are pinned byte for byte, and
// messages survive CAF's binary serialisation (optional fields included).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/batch.hpp"
#include "actors/errors.hpp"
#include "actors/fetcher.hpp"
#include "actors/job.hpp"
#include "actors/message_types.hpp"
#include "actors/store.hpp"

using namespace ei;
using namespace ei::actors;

namespace {

/// The actor system with the stage's types and error categories registered.
struct registered_system {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  registered_system() {
    cfg.set("scheduler.max-threads", std::size_t{1});
    cfg.set("logger.verbosity", caf::atom("quiet"));
    add_message_types(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
  }
};

/// Every code 0..last of `Code` has its own non-empty text, unlike an out-of-range value's;
/// every value after `last` has the out-of-range text; the category renders each code.
template <class Code>
void check_codes(caf::actor_system& sys, std::set<std::string>& categories,
                 std::set<caf::atom_value>& atoms) {
  using cat = error_category<Code>;
  const std::string name(cat::name);
  SCOPED_TRACE("category " + name);
  EXPECT_FALSE(name.empty());
  EXPECT_TRUE(categories.insert(name).second) << "two enums share the category " << name;
  EXPECT_TRUE(atoms.insert(cat::atom).second) << "two enums share the atom of " << name;

  const auto last = static_cast<unsigned>(cat::last);
  const std::string out_of_range(to_string(static_cast<Code>(255)));
  std::set<std::string> texts;
  for (unsigned i = 0; i <= last; ++i) {
    const auto code = static_cast<Code>(i);
    const std::string text(to_string(code));
    EXPECT_FALSE(text.empty()) << "code " << i << " has no text";
    EXPECT_NE(text, out_of_range) << "code " << i << " has the out-of-range text";
    EXPECT_TRUE(texts.insert(text).second) << "code " << i << " repeats the text " << text;
    const auto err = to_caf_error(code, "where");
    EXPECT_TRUE(err) << "code " << i << " is not an error as a caf::error";
    EXPECT_EQ(err.category(), cat::atom);
    EXPECT_EQ(from_caf_error_value<Code>(err.code()), code);
    EXPECT_EQ(sys.render(err), name + ": " + text + " (where)") << "code " << i;
  }
  for (unsigned i = last + 1; i < 255; ++i)
    EXPECT_EQ(std::string(to_string(static_cast<Code>(i))), out_of_range)
        << "code " << i << " lies beyond error_category<>::last: move `last` to the new code";
}

TEST(Errors, EveryCodeOfEveryComponentHasTextAndACategory) {
  registered_system rs;
  std::set<std::string> categories;
  std::set<caf::atom_value> atoms;
  check_codes<api::http_errc>(*rs.sys, categories, atoms);
  check_codes<api::codec_errc>(*rs.sys, categories, atoms);
  check_codes<storage::store_errc>(*rs.sys, categories, atoms);
  check_codes<fetch_errc>(*rs.sys, categories, atoms);
  check_codes<job_errc>(*rs.sys, categories, atoms);
  EXPECT_EQ(categories.size(), 5u);
}

// The summary's reasonCode and the job record's failure_code: tests and docs pin these.
TEST(Errors, JobFailureTextsAreThoseTheSummaryPrints) {
  const std::vector<std::string> expected{"job_not_in_progress",
                                          "job_expired",
                                          "job_finished_elsewhere",
                                          "http_status",
                                          "invalid_url",
                                          "invalid_config",
                                          "connect_failed",
                                          "tls_failed",
                                          "timeout",
                                          "connection_reset",
                                          "truncated_body",
                                          "response_too_large",
                                          "retries_exhausted",
                                          "cancelled",
                                          "bad_encoding",
                                          "decode",
                                          "cursor_rejected",
                                          "limit_rejected",
                                          "cursor_cycle",
                                          "empty_pages",
                                          "missing_end_cursor",
                                          "parallel_listing_mismatch",
                                          "short_listing",
                                          "item_of_another_job",
                                          "discovery_failed",
                                          "downstream_timeout",
                                          "downstream_protocol",
                                          "downstream_down",
                                          "store",
                                          "report",
                                          "internal",
                                          "interrupted"};
  ASSERT_EQ(expected.size(), static_cast<std::size_t>(error_category<job_errc>::last) + 1);
  for (std::size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(to_string(static_cast<job_errc>(i)), expected[i]);
  EXPECT_EQ(job_failure(job_errc::http_status, 404).text(), "http_404");
  EXPECT_EQ(job_failure(job_errc::http_status, 422).text(), "http_422");
  EXPECT_EQ(job_failure(job_errc::job_expired).text(), "job_expired");
  EXPECT_EQ(job_failure(job_errc::interrupted).text(), "interrupted");
}

// fetch_errc repeats the HTTP client's codes under the same names; a fetch failure becomes the
// job failure of the same name, and a status (also one the retries ended on) http_<status>.
TEST(Errors, FetchFailuresKeepTheirNamesUpToTheJob) {
  for (unsigned i = 0; i <= static_cast<unsigned>(error_category<api::http_errc>::last); ++i) {
    const auto h = static_cast<api::http_errc>(i);
    EXPECT_EQ(to_string(to_fetch_errc(h)), api::to_string(h));
  }
  for (unsigned i = 0; i <= static_cast<unsigned>(error_category<fetch_errc>::last); ++i) {
    const auto f = static_cast<fetch_errc>(i);
    if (f == fetch_errc::http_status) continue;
    EXPECT_EQ(to_job_failure(f, 0).text(), to_string(f));
  }
  fetch_failure f;
  f.code = fetch_errc::http_status;
  f.http_status = 403;
  EXPECT_EQ(failure_code(f).text(), "http_403");
  f.code = fetch_errc::retries_exhausted;
  f.http_status = 503;
  EXPECT_EQ(failure_code(f).text(), "http_503");
  f.http_status = 0;
  EXPECT_EQ(failure_code(f), job_failure(job_errc::retries_exhausted));
  f.http_status = 400;
  f.code = fetch_errc::http_status;
  f.cursor_rejected = true;
  EXPECT_EQ(failure_code(f), job_failure(job_errc::cursor_rejected));
  f.cursor_rejected = false;
  f.limit_rejected = true;
  EXPECT_EQ(failure_code(f), job_failure(job_errc::limit_rejected));
  fetch_failure d;
  d.code = fetch_errc::decode;
  EXPECT_EQ(failure_code(d).text(), "decode");
}

template <class T>
T round_trip(caf::actor_system& sys, const T& in) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  T copy = in;
  auto err = sink(copy);
  EXPECT_FALSE(err) << sys.render(err);
  T out;
  caf::binary_deserializer source{sys, buf};
  err = source(out);
  EXPECT_FALSE(err) << sys.render(err);
  return out;
}

TEST(Messages, SurviveBinarySerialisation) {
  registered_system rs;
  api::uuid job;
  job.bytes[0] = 0x3c;
  job.bytes[15] = 7;

  items_reply items;
  items.ok = true;
  items.attempts = 2;
  api::export_job_item it;
  it.accounting_entry_id.bytes[3] = 9;
  it.export_job_id = job;
  it.status = api::item_status::failed;
  it.tracking.failure_reason = "rejected by the ERP";
  it.tracking.external_id = std::string{};  // present and empty is not absent
  items.page.data = {it, api::export_job_item{}};
  items.page.pagination.end_cursor = "c2";
  items.page.pagination.total = 2;
  items.page.pagination.current_request.parameters["limit"] = {"500"};
  items.page.deviations.add("data[].status", "data[1].status: null");
  const auto items_back = round_trip(*rs.sys, items);
  EXPECT_TRUE(items_back.ok);
  EXPECT_EQ(items_back.attempts, 2u);
  EXPECT_EQ(items_back.page.data, items.page.data);
  EXPECT_EQ(items_back.page.pagination, items.page.pagination);
  EXPECT_FALSE(items_back.page.pagination.start_cursor.has_value());
  EXPECT_EQ(items_back.page.deviations, items.page.deviations);

  job_outcome out;
  out.job_id = job;
  set_failure(out, {job_errc::http_status, 404}, "the job is gone");
  out.stats.acked = 41;
  out.stats.by_remote_status[2] = 3;
  out.stats.duration_seconds = 1.5;
  out.reported.push_back({it.accounting_entry_id, "absent", "absent"});
  const auto out_back = round_trip(*rs.sys, out);
  EXPECT_EQ(out_back.job_id, job);
  EXPECT_EQ(out_back.result, job_result::failed);
  EXPECT_EQ(out_back.failure, job_failure(job_errc::http_status, 404));
  EXPECT_EQ(out_back.reason_code, "http_404");
  EXPECT_EQ(out_back.reason, "the job is gone");
  EXPECT_EQ(out_back.stats.acked, 41u);
  EXPECT_EQ(out_back.stats.by_remote_status, out.stats.by_remote_status);
  EXPECT_EQ(out_back.stats.duration_seconds, 1.5);
  ASSERT_EQ(out_back.reported.size(), 1u);
  EXPECT_EQ(out_back.reported[0].accounting_entry_id, it.accounting_entry_id);
  EXPECT_EQ(out_back.reported[0].action, "absent");

  store_reply bad{false, "disk full", storage::store_errc::io_error};
  const auto bad_back = round_trip(*rs.sys, bad);
  EXPECT_FALSE(bad_back.ok);
  EXPECT_EQ(bad_back.message, "disk full");
  EXPECT_EQ(bad_back.code, storage::store_errc::io_error);

  ack_outcomes acks;
  acks.progress.push_back({job, std::nullopt, 12});
  const auto acks_back = round_trip(*rs.sys, acks);
  ASSERT_EQ(acks_back.progress.size(), 1u);
  EXPECT_FALSE(acks_back.progress[0].dispatched_through.has_value());
  EXPECT_EQ(acks_back.progress[0].acked_through, std::optional<std::uint64_t>(12));
}

// Messages carry their registered names (a serialised message names its types by them).
TEST(Messages, AreRegisteredUnderTheirNames) {
  registered_system rs;
  const auto& types = rs.sys->types();
  EXPECT_EQ(types.portable_name(0, &typeid(job_outcome)), "ei::actors::job_outcome");
  EXPECT_EQ(types.portable_name(0, &typeid(batch_request)), "ei::actors::batch_request");
  EXPECT_EQ(types.portable_name(0, &typeid(std::vector<reconciliation_entry>)),
            "std::vector<ei::actors::reconciliation_entry>");
  EXPECT_EQ(types.portable_name(0, &typeid(std::vector<storage::job_progress>)),
            "std::vector<ei::storage::job_progress>");
}

}  // namespace
