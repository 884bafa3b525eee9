// The parse ceiling: how many items per second the codec decodes from captured pages, the fast
// path (simdjson page_parser) in place (`_in_place`: a padded body, as the HTTP client hands it
// over; what the stage runs) and copied first (a plain string_view), against the reference
// (nlohmann DOM), measured with Google Benchmark (repetitions randomly interleaved, so that
// background load hits all alike).
//
// Usage: ei_bench_parse CONTROL_PAGE [DATA_PAGE] [--rounds N] [--min-seconds S]
//                       [any --benchmark_* flag]
//   CONTROL_PAGE: a body of GET /v3/export-jobs/{id}/items (job_items)
//   DATA_PAGE:    a body of GET /v3/export-items?job_id= (item_dates)
//   --rounds N:   repetitions per decoder (default 5); --min-seconds S: per repetition (0.3)
// Prints one JSON object (what benchmarks/harness.py reads): per decoder, the items/s of every
// repetition and their median, min and max.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "api/codec.hpp"

namespace {

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

/// Keeps the items/s of every repetition, by decoder; prints nothing itself.
class collecting_reporter final : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      if (run.run_type != Run::RT_Iteration) continue;  // aggregates: computed below
      if (run.error_occurred) {
        std::fprintf(stderr, "ei_bench_parse: %s: %s\n", run.benchmark_name().c_str(),
                     run.error_message.c_str());
        std::exit(1);
      }
      const auto it = run.counters.find("items_per_second");
      if (it != run.counters.end())
        rounds[run.run_name.function_name].push_back(static_cast<double>(it->second));
    }
  }
  std::map<std::string, std::vector<double>> rounds;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void register_decoder(const char* name, std::function<std::size_t()> decode) {
  benchmark::RegisterBenchmark(name, [decode](benchmark::State& state) {
    std::size_t items = 0;
    for (auto _ : state) {
      const std::size_t n = decode();
      if (n == 0) {
        state.SkipWithError("the page did not decode");
        break;
      }
      items += n;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(items));
  });
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> files;
  std::vector<std::string> flags{argv[0]};
  int rounds = 5;
  double min_seconds = 0.3;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (a == "--min-seconds" && i + 1 < argc) {
      min_seconds = std::atof(argv[++i]);
    } else if (a.starts_with("--benchmark_")) {
      flags.emplace_back(a);
    } else {
      files.emplace_back(a);
    }
  }
  if (files.empty() || files.size() > 2 || rounds < 1 || !(min_seconds > 0)) {
    std::fprintf(stderr,
                 "usage: ei_bench_parse CONTROL_PAGE [DATA_PAGE] [--rounds N] [--min-seconds S]\n");
    return 2;
  }
  flags.insert(flags.begin() + 1, {"--benchmark_repetitions=" + std::to_string(rounds),
                                   "--benchmark_min_time=" + std::to_string(min_seconds),
                                   "--benchmark_enable_random_interleaving=true"});
  std::vector<char*> bargv;
  for (auto& f : flags)
    bargv.push_back(f.data());
  int bargc = static_cast<int>(bargv.size());
  benchmark::Initialize(&bargc, bargv.data());
  if (benchmark::ReportUnrecognizedArguments(bargc, bargv.data())) return 2;

  const std::string control = read_file(files[0]);
  const std::string data = files.size() > 1 ? read_file(files[1]) : std::string{};
  constexpr std::string_view where = "benchmark page";
  // As the HTTP client hands bodies over: 64 spare bytes of capacity, parsed in place.
  std::string control_padded = control, data_padded = data;
  control_padded.reserve(control.size() + ei::api::padded_body::padding);
  data_padded.reserve(data.size() + ei::api::padded_body::padding);
  const auto control_in_place = ei::api::padded_body::of(control_padded);
  const auto data_in_place = ei::api::padded_body::of(data_padded);
  ei::api::page_parser parser;
  register_decoder("job_items_simdjson_in_place", [&] {
    auto r = parser.job_items(control_in_place, where);
    return r.ok() ? r->data.size() : 0;
  });
  register_decoder("job_items_simdjson", [&] {
    auto r = parser.job_items(control, where);
    return r.ok() ? r->data.size() : 0;
  });
  register_decoder("job_items_nlohmann", [&] {
    auto r = ei::api::decode_job_items_reference(control, where);
    return r.ok() ? r->data.size() : 0;
  });
  if (!data.empty()) {
    register_decoder("item_dates_simdjson_in_place", [&] {
      auto r = parser.item_dates(data_in_place, where);
      return r.ok() ? r->data.size() : 0;
    });
    register_decoder("item_dates_simdjson", [&] {
      auto r = parser.item_dates(data, where);
      return r.ok() ? r->data.size() : 0;
    });
    register_decoder("item_dates_nlohmann", [&] {
      auto r = ei::api::decode_item_dates_reference(data, where);
      return r.ok() ? r->data.size() : 0;
    });
  }
  collecting_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  std::printf("{\"control_page_bytes\":%zu,\"data_page_bytes\":%zu", control.size(), data.size());
  for (const auto& [name, values] : reporter.rounds) {
    std::printf(",\"%s\":{\"median\":%.0f,\"min\":%.0f,\"max\":%.0f,\"rounds\":[", name.c_str(),
                median(values), *std::min_element(values.begin(), values.end()),
                *std::max_element(values.begin(), values.end()));
    for (std::size_t i = 0; i < values.size(); ++i)
      std::printf("%s%.0f", i ? "," : "", values[i]);
    std::printf("]}");
  }
  std::printf("}\n");
  return 0;
}
