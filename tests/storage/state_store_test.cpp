// Tests of the state store: record round trips, atomicity, order chunks, watermarks,
// locking, refusal of foreign/corrupt stores, verify(), and crash durability with child
// processes (the test binary re-executes itself in a child mode, so the child starts with a
// clean process instead of a fork of a multi-threaded one).
#include "storage/state_store.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

namespace fs = std::filesystem;
using namespace ei;
using namespace ei::storage;

namespace {

constexpr int child_out_fd = 100;  // child -> parent
constexpr int child_in_fd = 101;   // parent -> child

api::uuid make_uuid(std::uint64_t n, std::uint8_t salt = 0) {
  api::uuid u;
  u.bytes[0] = salt;
  for (int i = 0; i < 8; ++i)
    u.bytes[15 - i] = static_cast<std::uint8_t>(n >> (8 * i));
  return u;
}

job_record sample_job(const api::uuid& id) {
  job_record j;
  j.job_id = id;
  j.company_id = make_uuid(99, 0xcc);
  j.phase = job_phase::listing;
  j.ordering = ordering_mode::entry_id;
  j.runs = 2;
  j.created_ms = -5;
  j.updated_ms = 1'700'000'000'123;
  return j;
}

page_record sample_page(std::uint32_t page_no, std::size_t items, std::uint64_t first_id,
                        const api::uuid& salt_job = {}) {
  page_record p;
  p.page_no = page_no;
  p.request_cursor = page_no == 0 ? "" : "cursor-" + std::to_string(page_no);
  p.next_cursor = "cursor-" + std::to_string(page_no + 1);
  p.has_next = true;
  for (std::size_t i = 0; i < items; ++i) {
    listed_item it;
    it.id = make_uuid(first_id + i, salt_job.bytes[15]);
    it.remote_status = static_cast<api::item_status>(i % 6);
    if (it.remote_status == api::item_status::unknown) it.status_text = "weird_status";
    if (it.remote_status == api::item_status::successful) {
      it.tracking.exported_at = "2024-01-02T03:04:05Z";
      it.tracking.external_id = "ERP-" + std::to_string(first_id + i);
    }
    if (it.remote_status == api::item_status::failed) it.tracking.failure_reason = "";
    p.items.push_back(std::move(it));
  }
  return p;
}

/// Applies a page to a job record the way the listing stage must (see job_counters).
void account(job_record& j, const page_record& p) {
  j.pages_committed = p.page_no + 1;
  j.next_cursor = p.next_cursor;
  j.counters.pages = j.pages_committed;
  j.counters.listed += p.items.size();
  for (const auto& it : p.items)
    ++j.counters.by_remote_status[static_cast<std::size_t>(it.remote_status)];
}

std::vector<order_entry> sample_order(std::size_t n, std::uint64_t first_id = 1) {
  std::vector<order_entry> v;
  for (std::size_t i = 0; i < n; ++i)
    v.push_back({make_uuid(first_id + i, 0x0e), static_cast<api::item_status>(i % 2), false});
  return v;
}

/// Writes an order of `entries` in chunks and finishes it; the job record gets its size.
void write_order(state_store& s, job_record& j, const std::vector<order_entry>& entries) {
  const auto cs = state_store::order_chunk_size;
  for (std::size_t c = 0; c * cs < entries.size(); ++c) {
    const auto n = std::min(cs, entries.size() - c * cs);
    ASSERT_TRUE(s.write_order_chunk(j.job_id, static_cast<std::uint32_t>(c),
                                    std::span{entries}.subspan(c * cs, n)));
  }
  j.order_size = entries.size();
  j.counters.in_scope = entries.size();
  j.phase = job_phase::dispatching;
  ASSERT_TRUE(s.finish_order(j));
}

class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "ei-store-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) std::abort();
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::unique_ptr<state_store> open_ok(const fs::path& dir, store_options o = {}) {
  auto r = state_store::open(dir, o);
  if (!r) {
    ADD_FAILURE() << "open failed: " << to_string(r.err().code) << ": " << r.err().message;
    return nullptr;
  }
  return std::move(r).value();
}

/// Direct RocksDB access to plant damage that the store's API never writes.
struct raw_db {
  std::unique_ptr<rocksdb::DB> db;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> cf;

  explicit raw_db(const fs::path& dir) {
    std::vector<std::string> names;
    EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions{}, dir.string(), &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (auto& n : names)
      descs.emplace_back(n, rocksdb::ColumnFamilyOptions{});
    std::vector<rocksdb::ColumnFamilyHandle*> hs;
    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::Open(rocksdb::DBOptions{}, dir.string(), descs, &hs, &raw);
    EXPECT_TRUE(s.ok()) << s.ToString();
    db.reset(raw);
    for (std::size_t i = 0; i < names.size(); ++i)
      cf[names[i]] = hs[i];
  }
  ~raw_db() {
    for (auto& [n, h] : cf)
      db->DestroyColumnFamilyHandle(h);
    EXPECT_TRUE(db->Close().ok());
  }
  void put(const std::string& c, const std::string& k, const std::string& v) {
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions{}, cf.at(c), k, v).ok());
  }
  void del(const std::string& c, const std::string& k) {
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions{}, cf.at(c), k).ok());
  }
  std::optional<std::string> get(const std::string& c, const std::string& k) {
    std::string v;
    if (!db->Get(rocksdb::ReadOptions{}, cf.at(c), k, &v).ok()) return std::nullopt;
    return v;
  }
};

std::string key_of(const api::uuid& id, std::string_view suffix = {}) {
  std::string k(reinterpret_cast<const char*>(id.bytes.data()), 16);
  k.append(suffix);
  return k;
}

std::string be32(std::uint32_t v) {
  std::string s;
  for (int i = 3; i >= 0; --i)
    s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}

std::map<std::string, std::string> snapshot_files(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    out[fs::relative(e.path(), dir).string()] = ss.str();
  }
  return out;
}

bool contains_problem(const std::vector<std::string>& problems, std::string_view needle) {
  for (const auto& p : problems)
    if (p.find(needle) != std::string::npos) return true;
  return false;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v)
    s += "  " + x + "\n";
  return s;
}

// -- child processes ------------------------------------------------------------------------

struct child {
  pid_t pid = -1;
  int out = -1;  // read end: bytes the child reports
  int in = -1;   // write end: closing it tells the child to finish

  /// Blocks (at most 30 s) for one byte from the child; false on EOF or timeout.
  bool read_byte() {
    pollfd p{out, POLLIN, 0};
    if (::poll(&p, 1, 30'000) <= 0) return false;
    char c = 0;
    return ::read(out, &c, 1) == 1;
  }
  int wait() {
    if (in >= 0) ::close(in);
    in = -1;
    int st = 0;
    ::waitpid(pid, &st, 0);
    if (out >= 0) ::close(out);
    out = -1;
    pid = -1;
    return st;
  }
  ~child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      wait();
    }
  }
};

/// Re-executes this test binary in child `mode` on `dir`.
std::unique_ptr<child> spawn(const std::string& mode, const fs::path& dir) {
  int to_parent[2];
  int to_child[2];
  // O_CLOEXEC: the child keeps only the dup2'ed ends, so it sees EOF when the parent closes.
  if (::pipe2(to_parent, O_CLOEXEC) != 0 || ::pipe2(to_child, O_CLOEXEC) != 0) return nullptr;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(to_parent[1], child_out_fd);
    ::dup2(to_child[0], child_in_fd);
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, STDOUT_FILENO);
    ::setenv("EI_STORAGE_TEST_CHILD", mode.c_str(), 1);
    ::setenv("EI_STORAGE_TEST_DIR", dir.c_str(), 1);
    ::execl("/proc/self/exe", "state_store_test_child", "--gtest_filter=child_process.entry",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(to_parent[1]);
  ::close(to_child[0]);
  auto c = std::make_unique<child>();
  c->pid = pid;
  c->out = to_parent[0];
  c->in = to_child[1];
  return c;
}

void tell_parent() {
  const char c = 'x';
  if (::write(child_out_fd, &c, 1) != 1) ::_exit(3);
}

}  // namespace

/// The child side: does its mode's work and leaves with _exit (never destroying the store,
/// which is what a crash looks like to RocksDB). Skipped in the normal test run.
TEST(child_process, entry) {
  const char* mode = std::getenv("EI_STORAGE_TEST_CHILD");
  if (!mode) GTEST_SKIP() << "only runs as a child of other tests";
  const fs::path dir = std::getenv("EI_STORAGE_TEST_DIR");
  const std::string m = mode;
  store_options o;
  o.sync = sync_policy::none;
  auto r = state_store::open(dir, o);
  if (!r) ::_exit(2);
  auto& s = *r.value();
  const auto job_id = make_uuid(1, 0xaa);
  if (m == "hold") {
    tell_parent();
    char c;
    while (::read(child_in_fd, &c, 1) > 0) {
    }
    ::_exit(0);
  }
  auto j = sample_job(job_id);
  if (m == "commit_exit") {
    auto p = sample_page(0, 10, 1);
    account(j, p);
    if (!s.commit_page(j, 0, p)) ::_exit(4);
    write_order(s, j, sample_order(10));
    const job_progress progress[] = {{job_id, 7, 5}};
    if (!s.commit_acks(progress, std::pair<std::string, std::uint64_t>{"file", 4242})) ::_exit(5);
    tell_parent();
    ::_exit(0);  // no close, no flush: a crash as far as RocksDB is concerned
  }
  if (m == "commit_loop") {
    for (std::uint32_t n = 0;; ++n) {
      auto p = sample_page(n, 50, std::uint64_t{n} * 50 + 1);
      account(j, p);
      if (!s.commit_page(j, 0, p)) ::_exit(4);
      tell_parent();
    }
  }
  ::_exit(6);
}

// -- round trips ----------------------------------------------------------------------------

TEST(state_store, enum_names_round_trip) {
  for (auto p : {job_phase::verifying, job_phase::listing, job_phase::ordering,
                 job_phase::dispatching, job_phase::complete, job_phase::failed})
    EXPECT_EQ(parse_job_phase(to_string(p)), p);
  for (auto m : {ordering_mode::chronological, ordering_mode::entry_id})
    EXPECT_EQ(parse_ordering_mode(to_string(m)), m);
  for (auto p : {sync_policy::none, sync_policy::commits, sync_policy::always})
    EXPECT_EQ(parse_sync_policy(to_string(p)), p);
  EXPECT_FALSE(parse_job_phase("nope"));
  EXPECT_EQ(to_string(store_errc::schema_mismatch), "schema_mismatch");
}

TEST(state_store, job_record_round_trip_and_reopen) {
  temp_dir d;
  auto j = sample_job(make_uuid(7));
  j.phase = job_phase::failed;
  j.listing_epoch = 3;
  j.pages_committed = 0;
  j.next_cursor = std::string("bin\0ary", 7);
  j.listing_complete = true;
  j.counters.needs_reconciliation = 4;
  j.counters.redelivered = 9;
  j.failure_code = "job_expired";
  j.failure_message = "the job expired at 2024-01-01T00:00:00Z";
  {
    auto s = open_ok(d.path());
    ASSERT_TRUE(s);
    auto none = s->load_job(j.job_id);
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);
    ASSERT_TRUE(s->put_job(j));
    auto other = sample_job(make_uuid(3));
    ASSERT_TRUE(s->put_job(other));
    auto all = s->load_jobs();
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 2u);
    EXPECT_EQ((*all)[0], other);  // job id order
    EXPECT_EQ((*all)[1], j);
  }
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  auto back = s->load_job(j.job_id);
  ASSERT_TRUE(back);
  ASSERT_TRUE(*back);
  EXPECT_EQ(**back, j);
  auto w = s->load_watermarks(j.job_id);
  ASSERT_TRUE(w);
  EXPECT_EQ(*w, watermarks{});
}

TEST(state_store, page_commit_round_trip_with_tracking) {
  temp_dir d;
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  auto j = sample_job(make_uuid(1));
  std::vector<page_record> pages;
  for (std::uint32_t n = 0; n < 3; ++n) {
    pages.push_back(sample_page(n, 12, n * 100 + 1));
    account(j, pages.back());
    ASSERT_TRUE(s->commit_page(j, 0, pages.back()));
    // The job record moves with the page.
    auto rec = s->load_job(j.job_id);
    ASSERT_TRUE(rec && *rec);
    EXPECT_EQ((*rec)->next_cursor, pages.back().next_cursor);
    EXPECT_EQ((*rec)->pages_committed, n + 1);
  }
  pages.back().has_next = false;
  ASSERT_TRUE(s->commit_page(j, 0, pages.back()));  // idempotent overwrite
  auto back = s->load_pages(j.job_id, 0);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, pages);
  auto other_epoch = s->load_pages(j.job_id, 1);
  ASSERT_TRUE(other_epoch);
  EXPECT_TRUE(other_epoch->empty());

  int seen = 0;
  ASSERT_TRUE(s->for_each_page(j.job_id, 0, [&](page_record&& p) {
    EXPECT_EQ(p.page_no, static_cast<std::uint32_t>(seen));
    return ++seen < 2;
  }));
  EXPECT_EQ(seen, 2);

  const auto& tracked = pages[1].items[3];  // successful: exported_at + external_id
  ASSERT_FALSE(tracked.tracking.empty());
  auto t = s->load_tracking(j.job_id, tracked.id);
  ASSERT_TRUE(t && *t);
  EXPECT_EQ(**t, tracked.tracking);
  auto empty_failure = s->load_tracking(j.job_id, pages[1].items[2].id);  // failure_reason ""
  ASSERT_TRUE(empty_failure && *empty_failure);
  EXPECT_EQ((*empty_failure)->failure_reason, std::optional<std::string>{""});
  auto none = s->load_tracking(j.job_id, pages[1].items[0].id);
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);

  auto problems = s->verify();
  ASSERT_TRUE(problems);
  EXPECT_TRUE(problems->empty()) << join(*problems);

  ASSERT_TRUE(s->drop_pages(j.job_id, 0));
  auto dropped = s->load_pages(j.job_id, 0);
  ASSERT_TRUE(dropped);
  EXPECT_TRUE(dropped->empty());
}

TEST(state_store, commit_page_rejects_out_of_range_status) {
  temp_dir d;
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  auto j = sample_job(make_uuid(1));
  auto p = sample_page(0, 2, 1);
  p.items[1].remote_status = static_cast<api::item_status>(42);
  auto st = s->commit_page(j, 0, p);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.err().code, store_errc::invalid_argument);
  auto rec = s->load_job(j.job_id);
  ASSERT_TRUE(rec);
  EXPECT_FALSE(*rec);  // nothing written
}

// -- order ----------------------------------------------------------------------------------

TEST(state_store, the_order_ends_at_the_job_records_order_size) {
  temp_dir d;
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  constexpr auto cs = state_store::order_chunk_size;
  auto j = sample_job(make_uuid(6));
  auto entries = sample_order(cs + 10);
  write_order(*s, j, entries);
  // An interrupted reconciliation extended the last chunk and wrote a chunk beyond it, but
  // never finished: neither is part of the order.
  auto longer = sample_order(cs + 25);
  ASSERT_TRUE(s->write_order_chunk(j.job_id, 1, std::span{longer}.subspan(cs)));
  ASSERT_TRUE(s->write_order_chunk(j.job_id, 2, std::span{longer}.first(3)));
  auto all = s->read_order(j.job_id, 1, 1'000'000);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), cs + 10);
  auto past = s->read_order(j.job_id, cs + 11, 10);
  ASSERT_TRUE(past);
  EXPECT_TRUE(past->empty());
  // An order that is not finished yet has no entries to read.
  auto fresh = sample_job(make_uuid(7));
  ASSERT_TRUE(s->put_job(fresh));
  ASSERT_TRUE(s->write_order_chunk(fresh.job_id, 0, std::span{entries}.first(5)));
  auto unfinished = s->read_order(fresh.job_id, 1, 10);
  ASSERT_TRUE(unfinished);
  EXPECT_TRUE(unfinished->empty());
}

TEST(state_store, finish_order_writes_its_chunks_with_the_new_size_or_nothing) {
  temp_dir d;
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  constexpr auto cs = state_store::order_chunk_size;
  auto j = sample_job(make_uuid(8));
  auto entries = sample_order(cs + 10);
  write_order(*s, j, entries);
  auto grown = sample_order(cs + 12);
  grown[cs + 10].handed_on = true;  // flags survive the round trip
  grown[cs + 11].remote_status = api::item_status::unknown;
  grown[cs + 11].absent = true;
  auto k = j;
  k.order_size = cs + 12;
  k.counters.in_scope = k.order_size;
  // A chunk beyond the new size is refused, and nothing is written.
  const std::vector<order_chunk_write> bad{{1, {grown.begin() + cs, grown.end()}},
                                           {2, {grown.begin(), grown.begin() + 2}}};
  auto refused = s->finish_order(k, bad);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.err().code, store_errc::invalid_argument);
  EXPECT_EQ(s->read_order(j.job_id, 1, 1'000'000)->size(), cs + 10);
  EXPECT_EQ(s->load_job(j.job_id).value()->order_size, cs + 10);

  const std::vector<order_chunk_write> tail{{1, {grown.begin() + cs, grown.end()}}};
  ASSERT_TRUE(s->finish_order(k, tail));
  auto all = s->read_order(j.job_id, 1, 1'000'000);
  ASSERT_TRUE(all);
  EXPECT_EQ(*all, grown);
  auto problems = s->verify();
  ASSERT_TRUE(problems);
  EXPECT_TRUE(problems->empty()) << join(*problems);
}

TEST(state_store, order_reads_across_chunk_boundaries) {
  temp_dir d;
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  constexpr auto cs = state_store::order_chunk_size;
  auto j = sample_job(make_uuid(5));
  const auto entries = sample_order(2 * cs + 100);
  // A stale chunk from an earlier, longer ordering must disappear with finish_order.
  ASSERT_TRUE(s->write_order_chunk(j.job_id, 7, std::span{entries}.first(3)));
  write_order(*s, j, entries);

  const auto slice = [&](std::size_t first_seq, std::size_t n) {
    return std::vector<order_entry>(
        entries.begin() + static_cast<std::ptrdiff_t>(first_seq - 1),
        entries.begin() + static_cast<std::ptrdiff_t>(first_seq - 1 + n));
  };
  auto all = s->read_order(j.job_id, 1, 1'000'000);
  ASSERT_TRUE(all);
  EXPECT_EQ(*all, entries);
  auto mid = s->read_order(j.job_id, 100, 10);
  ASSERT_TRUE(mid);
  EXPECT_EQ(*mid, slice(100, 10));
  auto across = s->read_order(j.job_id, cs - 1, 5);  // chunk 0 -> chunk 1
  ASSERT_TRUE(across);
  EXPECT_EQ(*across, slice(cs - 1, 5));
  auto three = s->read_order(j.job_id, cs / 2, cs + cs / 2 + 50);  // spans three chunks
  ASSERT_TRUE(three);
  EXPECT_EQ(*three, slice(cs / 2, cs + cs / 2 + 50));
  auto tail = s->read_order(j.job_id, entries.size() - 2, 50);  // cut at the end
  ASSERT_TRUE(tail);
  EXPECT_EQ(*tail, slice(entries.size() - 2, 3));
  auto beyond = s->read_order(j.job_id, entries.size() + 1, 10);
  ASSERT_TRUE(beyond);
  EXPECT_TRUE(beyond->empty());
  auto far = s->read_order(j.job_id, 10 * cs + 1, 10);
  ASSERT_TRUE(far);
  EXPECT_TRUE(far->empty());
  auto zero = s->read_order(j.job_id, 0, 1);
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.err().code, store_errc::invalid_argument);

  auto too_big = sample_order(cs + 1);
  auto st = s->write_order_chunk(j.job_id, 0, too_big);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.err().code, store_errc::invalid_argument);

  auto problems = s->verify();
  ASSERT_TRUE(problems);
  EXPECT_TRUE(problems->empty()) << join(*problems);
}

// -- dispatch, acks, attempts, sinks --------------------------------------------------------

TEST(state_store, watermarks_are_monotonic) {
  temp_dir d;
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  auto j = sample_job(make_uuid(2));
  write_order(*s, j, sample_order(20));
  const auto id = j.job_id;

  ASSERT_TRUE(s->commit_dispatch(id, 10, {}));
  const job_progress ack5[] = {{id, std::nullopt, 5}};
  ASSERT_TRUE(s->commit_acks(ack5, std::nullopt));
  const job_progress ack3[] = {{id, std::nullopt, 3}};
  ASSERT_TRUE(s->commit_acks(ack3, std::nullopt));  // lower: ignored, not an error
  ASSERT_TRUE(s->commit_dispatch(id, 8, {}));       // lower: kept at 10
  auto w = s->load_watermarks(id);
  ASSERT_TRUE(w);
  EXPECT_EQ(*w, (watermarks{10, 5}));

  const job_progress ack11[] = {{id, std::nullopt, 11}};
  auto st = s->commit_acks(ack11, std::pair<std::string, std::uint64_t>{"f", 1});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.err().code, store_errc::invalid_argument);
  auto off = s->load_sink_offset("f");
  ASSERT_TRUE(off);
  EXPECT_FALSE(*off);  // the whole batch was refused

  // dispatch and ack in one commit, for two jobs.
  auto j2 = sample_job(make_uuid(3));
  write_order(*s, j2, sample_order(4, 100));
  const job_progress both[] = {{id, 15, 12}, {j2.job_id, 4, 4}, {id, std::nullopt, 1}};
  ASSERT_TRUE(s->commit_acks(both, std::nullopt));
  w = s->load_watermarks(id);
  ASSERT_TRUE(w);
  EXPECT_EQ(*w, (watermarks{15, 12}));
  w = s->load_watermarks(j2.job_id);
  ASSERT_TRUE(w);
  EXPECT_EQ(*w, (watermarks{4, 4}));

  st = s->commit_dispatch(id, 21, {});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.err().code, store_errc::invalid_argument);
  st = s->commit_dispatch(make_uuid(77), 1, {});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.err().code, store_errc::invalid_argument);

  auto problems = s->verify();
  ASSERT_TRUE(problems);
  EXPECT_TRUE(problems->empty()) << join(*problems);
}

TEST(state_store, concurrent_ack_writers_never_move_watermarks_backwards) {
  temp_dir d;
  store_options o;
  o.sync = sync_policy::none;  // this test is about ordering, not durability
  auto s = open_ok(d.path(), o);
  ASSERT_TRUE(s);
  auto j = sample_job(make_uuid(8));
  write_order(*s, j, sample_order(1000));
  ASSERT_TRUE(s->commit_dispatch(j.job_id, 1000, {}));
  constexpr int writers = 4;
  constexpr std::uint64_t per_writer = 250;
  std::atomic<bool> done{false};
  std::atomic<bool> regressed{false};
  std::thread reader{[&] {
    std::uint64_t last = 0;
    while (!done) {
      auto w = s->load_watermarks(j.job_id);
      if (!w || w->acked_through < last) regressed = true;
      if (w) last = w->acked_through;
    }
  }};
  std::vector<std::thread> threads;
  for (int t = 0; t < writers; ++t)
    threads.emplace_back([&, t] {
      // Interleaved values: writer t commits t+1, t+1+writers, ... in ascending order.
      for (std::uint64_t v = static_cast<std::uint64_t>(t) + 1; v <= writers * per_writer;
           v += writers) {
        const job_progress p[] = {{j.job_id, std::nullopt, v}};
        if (!s->commit_acks(p, std::nullopt)) regressed = true;
      }
    });
  for (auto& t : threads)
    t.join();
  done = true;
  reader.join();
  EXPECT_FALSE(regressed);
  EXPECT_EQ(s->load_watermarks(j.job_id)->acked_through, writers * per_writer);
}

TEST(state_store, attempts_and_sink_offsets) {
  temp_dir d;
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  auto j = sample_job(make_uuid(4));
  write_order(*s, j, sample_order(30));
  const std::pair<std::uint64_t, std::uint32_t> attempts[] = {{3, 2}, {7, 3}, {12, 2}};
  ASSERT_TRUE(s->commit_dispatch(j.job_id, 12, attempts));
  auto all = s->load_attempts(j.job_id, 1, 30);
  ASSERT_TRUE(all);
  EXPECT_EQ(*all, (std::vector<std::pair<std::uint64_t, std::uint32_t>>{{3, 2}, {7, 3}, {12, 2}}));
  auto some = s->load_attempts(j.job_id, 4, 12);
  ASSERT_TRUE(some);
  EXPECT_EQ(*some, (std::vector<std::pair<std::uint64_t, std::uint32_t>>{{7, 3}, {12, 2}}));
  auto none = s->load_attempts(j.job_id, 13, UINT64_MAX);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());

  const std::pair<std::uint64_t, std::uint32_t> bad_attempt[] = {{5, 1}};
  auto st = s->commit_dispatch(j.job_id, 12, bad_attempt);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.err().code, store_errc::invalid_argument);
  const std::pair<std::uint64_t, std::uint32_t> beyond[] = {{13, 2}};
  st = s->commit_dispatch(j.job_id, 12, beyond);
  ASSERT_FALSE(st);

  auto off = s->load_sink_offset("out.jsonl");
  ASSERT_TRUE(off);
  EXPECT_FALSE(*off);
  ASSERT_TRUE(s->commit_acks({}, std::pair<std::string, std::uint64_t>{"out.jsonl", 1234}));
  ASSERT_TRUE(s->commit_acks({}, std::pair<std::string, std::uint64_t>{"other", 1}));
  off = s->load_sink_offset("out.jsonl");
  ASSERT_TRUE(off && *off);
  EXPECT_EQ(**off, 1234u);
  st = s->commit_acks({}, std::pair<std::string, std::uint64_t>{"", 1});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.err().code, store_errc::invalid_argument);

  auto problems = s->verify();
  ASSERT_TRUE(problems);
  EXPECT_TRUE(problems->empty()) << join(*problems);
}

TEST(state_store, erase_job_removes_only_that_job) {
  temp_dir d;
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  job_record jobs[2] = {sample_job(make_uuid(10)), sample_job(make_uuid(11))};
  for (auto& j : jobs) {
    auto p = sample_page(0, 8, 1, j.job_id);
    account(j, p);
    ASSERT_TRUE(s->commit_page(j, 0, p));
    write_order(*s, j, sample_order(8));
    const std::pair<std::uint64_t, std::uint32_t> a[] = {{2, 2}};
    ASSERT_TRUE(s->commit_dispatch(j.job_id, 3, a));
  }
  ASSERT_TRUE(s->commit_acks({}, std::pair<std::string, std::uint64_t>{"f", 9}));
  ASSERT_TRUE(s->erase_job(jobs[0].job_id));
  ASSERT_TRUE(s->erase_job(jobs[0].job_id));  // idempotent

  const auto& gone = jobs[0].job_id;
  auto rec = s->load_job(gone);
  ASSERT_TRUE(rec);
  EXPECT_FALSE(*rec);
  EXPECT_EQ(*s->load_watermarks(gone), watermarks{});
  EXPECT_TRUE(s->load_pages(gone, 0)->empty());
  EXPECT_TRUE(s->read_order(gone, 1, 10)->empty());
  EXPECT_TRUE(s->load_attempts(gone, 1, 100)->empty());
  auto t = s->load_tracking(gone, make_uuid(4, jobs[0].job_id.bytes[15]));
  ASSERT_TRUE(t);
  EXPECT_FALSE(*t);

  const auto& kept = jobs[1].job_id;
  EXPECT_TRUE(*s->load_job(kept));
  EXPECT_EQ(*s->load_watermarks(kept), (watermarks{3, 0}));
  EXPECT_EQ(s->load_pages(kept, 0)->size(), 1u);
  EXPECT_EQ(s->read_order(kept, 1, 10)->size(), 8u);
  EXPECT_EQ(s->load_attempts(kept, 1, 100)->size(), 1u);
  EXPECT_EQ(**s->load_sink_offset("f"), 9u);
  auto problems = s->verify();
  ASSERT_TRUE(problems);
  EXPECT_TRUE(problems->empty()) << join(*problems);
}

// -- locking and refusal --------------------------------------------------------------------

TEST(state_store, second_open_in_same_process_is_locked) {
  temp_dir d;
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  auto again = state_store::open(d.path(), {});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.err().code, store_errc::locked);
  EXPECT_NE(again.err().message.find(d.path().string()), std::string::npos) << again.err().message;
  EXPECT_NE(again.err().message.find("another export-items process"), std::string::npos);
  s.reset();
  EXPECT_TRUE(open_ok(d.path()));  // released on close
}

TEST(state_store, open_held_by_another_process_is_locked) {
  temp_dir d;
  auto c = spawn("hold", d.path());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->read_byte()) << "child did not open the store";
  auto r = state_store::open(d.path(), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, store_errc::locked);
  EXPECT_NE(r.err().message.find(d.path().string()), std::string::npos);
  const int st = c->wait();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  EXPECT_TRUE(open_ok(d.path()));
}

TEST(state_store, schema_mismatch_is_refused_and_left_untouched) {
  temp_dir d;
  {
    auto s = open_ok(d.path());
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->put_job(sample_job(make_uuid(1))));
  }
  {
    raw_db raw{d.path()};
    raw.put("meta", "schema", "export-items-state/999");
  }
  const auto before = snapshot_files(d.path());
  auto r = state_store::open(d.path(), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, store_errc::schema_mismatch);
  EXPECT_NE(r.err().message.find("export-items-state/999"), std::string::npos) << r.err().message;
  EXPECT_NE(r.err().message.find("export-items-state/1"), std::string::npos);
  EXPECT_NE(r.err().message.find(d.path().string()), std::string::npos);
  EXPECT_EQ(snapshot_files(d.path()), before);
}

TEST(state_store, foreign_or_schemaless_stores_are_refused) {
  temp_dir d;
  {  // a RocksDB store with data but no schema record
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, d.path().string(), &raw).ok());
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions{}, "k", "v").ok());
    delete raw;
  }
  const auto before = snapshot_files(d.path());
  auto r = state_store::open(d.path(), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, store_errc::corrupt);
  EXPECT_NE(r.err().message.find("no export-items schema"), std::string::npos) << r.err().message;
  EXPECT_EQ(snapshot_files(d.path()), before);

  temp_dir d2;
  std::ofstream{d2.path() / "notes.txt"} << "not a store";
  r = state_store::open(d2.path(), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, store_errc::corrupt);
  EXPECT_TRUE(fs::exists(d2.path() / "notes.txt"));
  EXPECT_FALSE(fs::exists(d2.path() / "CURRENT"));

  // What a process killed while creating the store leaves (our marker, no CURRENT yet):
  // started again.
  temp_dir d4;
  std::ofstream{d4.path() / std::string{state_marker_name}} << "ours";
  for (const char* name : {"IDENTITY", "LOCK", "LOG", "MANIFEST-000001", "000003.log"})
    std::ofstream{d4.path() / name} << "partial";
  r = state_store::open(d4.path(), {});
  ASSERT_TRUE(r) << r.err().message;
  EXPECT_TRUE(fs::exists(d4.path() / "CURRENT"));
  r = {make_error(store_errc::io_error, "closed")};
  // ...but not when anything else is in the directory.
  temp_dir d5;
  std::ofstream{d5.path() / std::string{state_marker_name}} << "ours";
  std::ofstream{d5.path() / "IDENTITY"} << "partial";
  std::ofstream{d5.path() / "mine.txt"} << "user file";
  const auto before5 = snapshot_files(d5.path());
  r = state_store::open(d5.path(), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, store_errc::corrupt);
  EXPECT_NE(r.err().message.find("mine.txt"), std::string::npos) << r.err().message;
  EXPECT_EQ(snapshot_files(d5.path()), before5);

  temp_dir d3;
  store_options no_create;
  no_create.create_if_missing = false;
  r = state_store::open(d3.path() / "missing", no_create);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, store_errc::not_found);
}

// A directory export-items did not create is never cleaned, even when its files look like
// what RocksDB leaves behind: only our marker proves a half-created store is ours.
TEST(state_store, files_it_did_not_write_are_never_deleted) {
  for (bool create : {false, true}) {
    temp_dir d;
    std::ofstream{d.path() / "app.log"} << "application log";
    std::ofstream{d.path() / "LOG.old"} << "older log";
    const auto before = snapshot_files(d.path());
    store_options o;
    o.create_if_missing = create;
    auto r = state_store::open(d.path(), o);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, store_errc::corrupt);
    EXPECT_NE(r.err().message.find(d.path().string()), std::string::npos) << r.err().message;
    EXPECT_EQ(snapshot_files(d.path()), before);
  }
  // RocksDB-looking leftovers without our marker are someone else's too.
  temp_dir d2;
  for (const char* name : {"IDENTITY", "LOCK", "LOG", "MANIFEST-000001"})
    std::ofstream{d2.path() / name} << "partial";
  const auto before2 = snapshot_files(d2.path());
  auto r = state_store::open(d2.path(), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, store_errc::corrupt);
  EXPECT_EQ(snapshot_files(d2.path()), before2);
}

TEST(state_store, a_new_store_gets_the_marker_first) {
  temp_dir d;
  {
    auto s = open_ok(d.path());
    ASSERT_TRUE(s);
  }
  EXPECT_TRUE(fs::exists(d.path() / std::string{state_marker_name}));
  // A directory that does not exist yet is created with it.
  auto s = open_ok(d.path() / "a" / "b");
  ASSERT_TRUE(s);
  EXPECT_TRUE(fs::exists(d.path() / "a" / "b" / std::string{state_marker_name}));
}

/// Names, sizes, modification times and contents of every entry (and of `dir` itself).
std::map<std::string, std::string> snapshot_entries(const fs::path& dir) {
  std::map<std::string, std::string> out;
  const auto stamp = [](const fs::path& p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return std::string("?");
    return std::to_string(st.st_size) + "@" + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec);
  };
  out["."] = stamp(dir);
  for (const auto& [name, content] : snapshot_files(dir))
    out[name] = stamp(dir / name) + ":" + content;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (!out.count(fs::relative(e.path(), dir).string()))
      out[fs::relative(e.path(), dir).string()] = stamp(e.path());
  return out;
}

TEST(state_store, read_only_open_never_changes_the_directory) {
  store_options ro;
  ro.read_only = true;
  {  // no store: not_found, nothing touched
    temp_dir d;
    std::ofstream{d.path() / "app.log"} << "application log";
    std::ofstream{d.path() / "LOG.old"} << "older log";
    const auto before = snapshot_entries(d.path());
    auto r = state_store::open(d.path(), ro);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, store_errc::not_found);
    EXPECT_NE(r.err().message.find(d.path().string()), std::string::npos) << r.err().message;
    EXPECT_EQ(snapshot_entries(d.path()), before);
    auto missing = state_store::open(d.path() / "missing", ro);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.err().code, store_errc::not_found);
    EXPECT_FALSE(fs::exists(d.path() / "missing"));
  }
  temp_dir d;
  const auto id = make_uuid(7);
  {
    auto s = open_ok(d.path());
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->put_job(sample_job(id)));
    ASSERT_TRUE(s->bind_sink("ndjson:/x", {1, 2}, 0));
  }
  const auto before = snapshot_entries(d.path());
  {
    auto r = state_store::open(d.path(), ro);
    ASSERT_TRUE(r) << r.err().message;
    auto job = (*r)->load_job(id);
    ASSERT_TRUE(job);
    ASSERT_TRUE(*job);
    auto problems = (*r)->verify();
    ASSERT_TRUE(problems);
    EXPECT_TRUE(problems->empty()) << problems->front();
    EXPECT_FALSE((*r)->put_job(sample_job(make_uuid(8))).ok());  // reads only
    // Readers share the directory; a writer is locked out while they read.
    auto second = state_store::open(d.path(), ro);
    EXPECT_TRUE(second) << second.err().message;
    auto writer = state_store::open(d.path(), {});
    ASSERT_FALSE(writer);
    EXPECT_EQ(writer.err().code, store_errc::locked);
  }
  EXPECT_EQ(snapshot_entries(d.path()), before);
}

TEST(state_store, sink_bindings_round_trip_and_verify_clean) {
  temp_dir d;
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->commit_acks({}, std::make_pair(std::string("legacy"), std::uint64_t{12})));
  ASSERT_TRUE(s->bind_sink("ndjson:/out", {64769, 4242}, 0));
  ASSERT_TRUE(s->commit_acks({}, std::make_pair(std::string("ndjson:/out"), std::uint64_t{99})));
  EXPECT_FALSE(s->bind_sink("", {1, 1}, 0).ok());
  auto sinks = s->load_sinks();
  ASSERT_TRUE(sinks);
  ASSERT_EQ(sinks->size(), 2U);
  EXPECT_EQ((*sinks)[0].name, "legacy");
  EXPECT_EQ((*sinks)[0].offset, 12U);
  EXPECT_FALSE((*sinks)[0].identity);
  EXPECT_EQ((*sinks)[1].name, "ndjson:/out");
  EXPECT_EQ((*sinks)[1].offset, 99U);
  ASSERT_TRUE((*sinks)[1].identity);
  EXPECT_EQ(*(*sinks)[1].identity, (file_identity{64769, 4242}));
  auto problems = s->verify();
  ASSERT_TRUE(problems);
  EXPECT_TRUE(problems->empty()) << problems->front();
}

TEST(state_store, corrupt_records_are_detected) {
  temp_dir d;
  const auto id = make_uuid(42);
  const auto intact = make_uuid(43);  // a sound job record with a corrupt order chunk
  {
    auto s = open_ok(d.path());
    ASSERT_TRUE(s);
    for (const auto& job : {id, intact}) {
      auto j = sample_job(job);
      auto p = sample_page(0, 5, 1);
      account(j, p);
      ASSERT_TRUE(s->commit_page(j, 0, p));
      write_order(*s, j, sample_order(5));
    }
  }
  {
    raw_db raw{d.path()};
    raw.put("jobs", key_of(id, "R"), std::string("\x01\x02", 2));          // truncated
    raw.put("order", key_of(id, be32(0)), std::string("\x07garbage", 8));  // unknown version
    raw.put("order", key_of(intact, be32(0)), std::string("\x07garbage", 8));
    auto page = raw.get("pages", key_of(id, be32(0) + be32(0)));
    ASSERT_TRUE(page);
    (*page)[page->size() - 1] = '\x09';  // a flags byte with unknown bits... or status text
    page->push_back('\x00');             // and a trailing byte
    raw.put("pages", key_of(id, be32(0) + be32(0)), *page);
  }
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  auto rec = s->load_job(id);
  ASSERT_FALSE(rec);
  EXPECT_EQ(rec.err().code, store_errc::corrupt);
  EXPECT_NE(rec.err().message.find("'jobs'"), std::string::npos) << rec.err().message;
  EXPECT_NE(rec.err().message.find(id.to_string()), std::string::npos);
  EXPECT_NE(rec.err().message.find("truncated"), std::string::npos);
  auto jobs = s->load_jobs();
  ASSERT_FALSE(jobs);
  EXPECT_EQ(jobs.err().code, store_errc::corrupt);

  // The order ends at the job record's order size: a corrupt record fails read_order too.
  auto unbounded = s->read_order(id, 1, 5);
  ASSERT_FALSE(unbounded);
  EXPECT_EQ(unbounded.err().code, store_errc::corrupt);
  EXPECT_NE(unbounded.err().message.find("'jobs'"), std::string::npos) << unbounded.err().message;
  auto order = s->read_order(intact, 1, 5);
  ASSERT_FALSE(order);
  EXPECT_EQ(order.err().code, store_errc::corrupt);
  EXPECT_NE(order.err().message.find("'order'"), std::string::npos) << order.err().message;
  EXPECT_NE(order.err().message.find("format version 7"), std::string::npos);

  auto pages = s->load_pages(id, 0);
  ASSERT_FALSE(pages);
  EXPECT_EQ(pages.err().code, store_errc::corrupt);
  EXPECT_NE(pages.err().message.find("'pages'"), std::string::npos) << pages.err().message;

  auto problems = s->verify();
  ASSERT_TRUE(problems);
  EXPECT_TRUE(
      contains_problem(*problems, "jobs: job " + id.to_string() + ": job record: truncated"))
      << join(*problems);
  EXPECT_TRUE(contains_problem(*problems, "order: job " + id.to_string() + ": chunk 0"))
      << join(*problems);
  EXPECT_TRUE(contains_problem(*problems, "pages: job " + id.to_string() + ": epoch 0 page 0"))
      << join(*problems);
}

// -- verify ---------------------------------------------------------------------------------

TEST(state_store, verify_reports_each_kind_of_problem) {
  temp_dir d;
  const auto id = make_uuid(1);
  const auto cs = state_store::order_chunk_size;
  auto j = sample_job(id);
  {
    auto s = open_ok(d.path());
    ASSERT_TRUE(s);
    for (std::uint32_t n = 0; n < 3; ++n) {
      auto p = sample_page(n, 10, n * 10 + 1);
      account(j, p);
      ASSERT_TRUE(s->commit_page(j, 0, p));
    }
    auto entries = sample_order(2 * cs + 5);
    entries[2 * cs + 3].id = entries[2].id;  // a duplicate id (chunks 0 and 2)
    write_order(*s, j, entries);
    ASSERT_TRUE(s->commit_dispatch(id, 10, {}));
    auto problems = s->verify();
    ASSERT_TRUE(problems);
    // Only the planted duplicate so far.
    ASSERT_EQ(problems->size(), 1u) << join(*problems);
    EXPECT_TRUE(contains_problem(*problems, "appears more than once"));
  }
  const auto orphan = make_uuid(666);
  {
    raw_db raw{d.path()};
    raw.del("order", key_of(id, be32(1)));  // missing chunk
    raw.put("pages", key_of(orphan, be32(0) + be32(0)),
            *raw.get("pages", key_of(id, be32(0) + be32(0))));
    raw.put("pages", key_of(id, be32(7) + be32(0)),
            *raw.get("pages", key_of(id, be32(0) + be32(2))));
    raw.del("pages", key_of(id, be32(0) + be32(1)));  // missing page
    std::string w("\x01", 1);
    for (std::uint64_t v : {std::uint64_t{3}, std::uint64_t{9}})  // acked > dispatched
      for (int i = 0; i < 8; ++i)
        w.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    raw.put("jobs", key_of(id, "W"), w);
    raw.put("attempts", key_of(orphan, std::string(7, '\0') + "\x01"),
            std::string("\x01\x02\0\0\0", 5));
    raw.put("meta", "mystery", "?");
  }
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  auto bad = j;
  bad.counters.listed += 1;  // counters no longer match the pages
  ASSERT_TRUE(s->put_job(bad));
  auto problems = s->verify();
  ASSERT_TRUE(problems);
  const auto job = "job " + id.to_string() + ": ";
  EXPECT_TRUE(contains_problem(*problems, "order: " + job + "chunk 1 is missing"))
      << join(*problems);
  EXPECT_TRUE(contains_problem(*problems, "appears more than once")) << join(*problems);
  EXPECT_TRUE(contains_problem(
      *problems, "pages: job " + orphan.to_string() + ": records of a job without a job record"))
      << join(*problems);
  EXPECT_TRUE(contains_problem(
      *problems, "attempts: job " + orphan.to_string() + ": records of a job without"))
      << join(*problems);
  EXPECT_TRUE(contains_problem(*problems, "pages of listing epoch 7")) << join(*problems);
  EXPECT_TRUE(contains_problem(*problems, "page 1 of epoch 0 is missing")) << join(*problems);
  EXPECT_TRUE(contains_problem(*problems, "acked_through 9 exceeds dispatched_through 3"))
      << join(*problems);
  EXPECT_TRUE(contains_problem(*problems, "counter listed = 31 but the pages hold 20 items"))
      << join(*problems);
  EXPECT_TRUE(contains_problem(*problems, "meta: unknown key 'mystery'")) << join(*problems);
}

TEST(state_store, verify_reports_orphan_watermarks_and_stale_chunks) {
  temp_dir d;
  const auto id = make_uuid(1);
  {
    auto s = open_ok(d.path());
    ASSERT_TRUE(s);
    auto j = sample_job(id);
    write_order(*s, j, sample_order(10));
  }
  {
    raw_db raw{d.path()};
    raw.put("order", key_of(id, be32(3)), *raw.get("order", key_of(id, be32(0))));
    raw.put("jobs", key_of(make_uuid(5), "W"), std::string("\x01", 1) + std::string(16, '\0'));
  }
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  auto problems = s->verify();
  ASSERT_TRUE(problems);
  EXPECT_TRUE(contains_problem(*problems, "chunk 3 lies beyond order size 10")) << join(*problems);
  EXPECT_TRUE(contains_problem(*problems, "watermarks without a job record")) << join(*problems);
}

TEST(state_store, verify_tolerates_old_epoch_only_while_relisting) {
  temp_dir d;
  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  auto j = sample_job(make_uuid(9));
  auto old_page = sample_page(0, 4, 1);
  account(j, old_page);
  ASSERT_TRUE(s->commit_page(j, 0, old_page));
  // The cursor was rejected: a new epoch starts from scratch, counters reset.
  j.listing_epoch = 1;
  j.pages_committed = 0;
  j.counters = {};
  auto new_page = sample_page(0, 6, 1);
  account(j, new_page);
  ASSERT_TRUE(s->commit_page(j, 1, new_page));
  auto problems = s->verify();
  ASSERT_TRUE(problems);
  EXPECT_TRUE(problems->empty()) << join(*problems);

  j.listing_complete = true;
  ASSERT_TRUE(s->put_job(j));
  problems = s->verify();
  ASSERT_TRUE(problems);
  EXPECT_TRUE(contains_problem(*problems, "pages of listing epoch 0")) << join(*problems);

  ASSERT_TRUE(s->drop_pages(j.job_id, 0));
  problems = s->verify();
  ASSERT_TRUE(problems);
  EXPECT_TRUE(problems->empty()) << join(*problems);
  EXPECT_EQ(s->load_pages(j.job_id, 1)->size(), 1u);
}

// -- crashes --------------------------------------------------------------------------------

TEST(state_store, writes_survive_kill_without_close) {
  temp_dir d;
  auto c = spawn("commit_exit", d.path());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->read_byte()) << "child did not commit";
  const int st = c->wait();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;

  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  const auto id = make_uuid(1, 0xaa);
  auto rec = s->load_job(id);
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->phase, job_phase::dispatching);
  EXPECT_EQ((*rec)->order_size, 10u);
  EXPECT_EQ(s->load_pages(id, 0)->size(), 1u);
  EXPECT_EQ(s->read_order(id, 1, 100)->size(), 10u);
  EXPECT_EQ(*s->load_watermarks(id), (watermarks{7, 5}));
  EXPECT_EQ(**s->load_sink_offset("file"), 4242u);
  auto problems = s->verify();
  ASSERT_TRUE(problems);
  EXPECT_TRUE(problems->empty()) << join(*problems);
}

TEST(state_store, page_and_cursor_stay_together_across_kill_9) {
  temp_dir d;
  auto c = spawn("commit_loop", d.path());
  ASSERT_TRUE(c);
  int committed = 0;
  while (committed < 200 && c->read_byte())
    ++committed;
  ASSERT_EQ(committed, 200);
  ::kill(c->pid, SIGKILL);  // mid-write, most likely
  const int st = c->wait();
  ASSERT_TRUE(WIFSIGNALED(st)) << st;

  auto s = open_ok(d.path());
  ASSERT_TRUE(s);
  const auto id = make_uuid(1, 0xaa);
  auto rec = s->load_job(id);
  ASSERT_TRUE(rec && *rec);
  auto pages = s->load_pages(id, 0);
  ASSERT_TRUE(pages);
  // Every commit that returned is there (process crash), and the job record's cursor is the
  // one after the last stored page: never ahead of its items, never behind them.
  EXPECT_GE(pages->size(), 200u);
  EXPECT_EQ((*rec)->pages_committed, pages->size());
  EXPECT_EQ((*rec)->next_cursor, pages->back().next_cursor);
  auto problems = s->verify();
  ASSERT_TRUE(problems);
  EXPECT_TRUE(problems->empty()) << join(*problems);
}
