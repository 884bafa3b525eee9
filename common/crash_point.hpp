// Named crash points for the crash-recovery tests. The call sites are in every build, but
// only test builds can fire them: the binary users run (`export-items`, ei_common) links an
// inert crash_point() that does nothing and never reads the environment. Test builds link the
// active variant (common/crash_point_active.cpp: the `ei_crash_points` object library, built
// only with EI_BUILD_TESTS, and the `export-items-crashpoints` binary), where the environment
// variable EI_CRASH_AT names a point:
//
//   EI_CRASH_AT=<name>[:<n>]   kill this process with SIGKILL at the n-th time (default 1st)
//                              execution reaches crash_point("<name>")
//
// SIGKILL, not abort(): nothing is flushed or unwound, exactly like `kill -9`. The names are
// listed in crash_points() and documented in tests/crash/README.md.
#pragma once

#include <string_view>
#include <vector>

namespace ei {

/// Active variant: kills the process if EI_CRASH_AT selects this point and hit count;
/// otherwise a relaxed atomic load (cheap on hot paths). Inert variant: does nothing.
void crash_point(std::string_view name) noexcept;

/// Every crash point the code base declares (for the harness and --help texts).
const std::vector<std::string_view>& crash_points() noexcept;

}  // namespace ei
