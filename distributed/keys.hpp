// Where a batch lives in etcd: every key under one prefix (docs/distributed.md, "Keys").
//
//   P/jobs/<job>            {"jobId","companyId"}                 submit; never changed
//   P/claims/<job>          {"worker","lease","attempt"}          under the claimer's lease
//   P/locks/<company>       <job>                                 under the claimer's lease
//   P/attempts/<job>        <worker> (its version = attempts)     claim txn
//   P/progress/<job>        {"watermark","acked","attempt","worker"}  fenced txn
//   P/acked/<job>/<a>-<n>   16-byte ids acked in one progress write    same fenced txn
//   P/done/<job>            {"result","worker","attempt",...}     exactly once (txn)
#pragma once

#include <string>
#include <string_view>

namespace ei::distributed {

struct keys {
  std::string prefix;  // ends with '/'

  /// A prefix as given: must start with '/', gets a trailing '/'. "" when it is unusable.
  static std::string normalize(std::string_view p) {
    if (p.empty() || p.front() != '/') return {};
    std::string s(p);
    if (s.back() != '/') s += '/';
    return s;
  }

  std::string jobs() const { return prefix + "jobs/"; }
  std::string job(const std::string& id) const { return jobs() + id; }
  std::string claims() const { return prefix + "claims/"; }
  std::string claim(const std::string& id) const { return claims() + id; }
  std::string locks() const { return prefix + "locks/"; }
  std::string lock(const std::string& company) const { return locks() + company; }
  std::string attempts() const { return prefix + "attempts/"; }
  std::string attempt(const std::string& id) const { return attempts() + id; }
  std::string progresses() const { return prefix + "progress/"; }
  std::string progress(const std::string& id) const { return progresses() + id; }
  std::string acked(const std::string& id) const { return prefix + "acked/" + id + "/"; }
  std::string dones() const { return prefix + "done/"; }
  std::string done(const std::string& id) const { return dones() + id; }
};

}  // namespace ei::distributed
