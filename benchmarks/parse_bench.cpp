// The parse ceiling: how many items per second the codec decodes from captured pages, the fast
// path (simdjson page_parser) against the reference (nlohmann DOM), interleaved A B A B over
// rounds so that background load hits both alike.
//
// Usage: ei_bench_parse CONTROL_PAGE [DATA_PAGE] [--rounds N] [--min-seconds S]
//   CONTROL_PAGE: a body of GET /v3/export-jobs/{id}/items (job_items)
//   DATA_PAGE:    a body of GET /v3/export-items?job_id= (item_dates)
// Prints one JSON object: per decoder, the items/s of every round and their median.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "api/codec.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

std::string read_file(const std::string& path) {
  std::ifstream f{path, std::ios::binary};
  std::ostringstream s;
  s << f.rdbuf();
  if (!f) {
    std::fprintf(stderr, "ei_bench_parse: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  return s.str();
}

// Runs `decode` (returns the items decoded, 0 on failure) for at least `min_seconds`.
double items_per_second(const std::function<std::size_t()>& decode, double min_seconds) {
  std::size_t items = 0;
  const auto t0 = clock_type::now();
  double dt = 0;
  do {
    const std::size_t n = decode();
    if (n == 0) {
      std::fprintf(stderr, "ei_bench_parse: the page did not decode\n");
      std::exit(1);
    }
    items += n;
    dt = std::chrono::duration<double>(clock_type::now() - t0).count();
  } while (dt < min_seconds);
  return static_cast<double>(items) / dt;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct contender {
  std::string name;
  std::function<std::size_t()> decode;
  std::vector<double> rounds;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> files;
  int rounds = 5;
  double min_seconds = 0.3;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (a == "--min-seconds" && i + 1 < argc) {
      min_seconds = std::atof(argv[++i]);
    } else {
      files.emplace_back(a);
    }
  }
  if (files.empty() || files.size() > 2 || rounds < 1) {
    std::fprintf(stderr,
                 "usage: ei_bench_parse CONTROL_PAGE [DATA_PAGE] [--rounds N] [--min-seconds S]\n");
    return 2;
  }
  const std::string control = read_file(files[0]);
  const std::string data = files.size() > 1 ? read_file(files[1]) : std::string{};
  constexpr std::string_view where = "benchmark page";

  ei::api::page_parser parser;
  std::vector<contender> cs;
  cs.push_back({"job_items_simdjson",
                [&] {
                  auto r = parser.job_items(control, where);
                  return r.ok() ? r->data.size() : 0;
                },
                {}});
  cs.push_back({"job_items_nlohmann",
                [&] {
                  auto r = ei::api::decode_job_items_reference(control, where);
                  return r.ok() ? r->data.size() : 0;
                },
                {}});
  if (!data.empty()) {
    cs.push_back({"item_dates_simdjson",
                  [&] {
                    auto r = parser.item_dates(data, where);
                    return r.ok() ? r->data.size() : 0;
                  },
                  {}});
    cs.push_back({"item_dates_nlohmann",
                  [&] {
                    auto r = ei::api::decode_item_dates_reference(data, where);
                    return r.ok() ? r->data.size() : 0;
                  },
                  {}});
  }
  for (int r = 0; r < rounds; ++r)
    for (auto& c : cs)
      c.rounds.push_back(items_per_second(c.decode, min_seconds));

  std::printf("{\"control_page_bytes\":%zu,\"data_page_bytes\":%zu", control.size(), data.size());
  for (const auto& c : cs) {
    std::printf(",\"%s\":{\"median\":%.0f,\"min\":%.0f,\"max\":%.0f,\"rounds\":[", c.name.c_str(),
                median(c.rounds), *std::min_element(c.rounds.begin(), c.rounds.end()),
                *std::max_element(c.rounds.begin(), c.rounds.end()));
    for (std::size_t i = 0; i < c.rounds.size(); ++i)
      std::printf("%s%.0f", i ? "," : "", c.rounds[i]);
    std::printf("]}");
  }
  std::printf("}\n");
  return 0;
}
