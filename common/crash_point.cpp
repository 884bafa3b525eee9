// The INERT crash points of every binary users run (ei_common): crash_point() does nothing
// and nothing reads EI_CRASH_AT. Test builds link common/crash_point_active.cpp (the
// ei_crash_points object library) instead, which takes precedence over this archive member.
#include "common/crash_point.hpp"

namespace ei {

void crash_point(std::string_view) noexcept {}

}  // namespace ei
