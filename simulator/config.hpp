// The simulator's configuration keys (common/json_config.hpp): one table, with one range per
// key, for `export-items-sim --config` (parse_config_json) and the `embedded` section of the
// stage's configuration (pipeline/config.cpp). The ranges are listed in simulator/README.md.
#pragma once

#include "common/json_config.hpp"
#include "simulator/simulator.hpp"

namespace ei::sim {

/// Every key of a config file (sim_config's member names; `items` is `items_per_job` too),
/// each storing into `c`. `faults` is checked against the grammar as it is read.
json_config::keys config_keys(sim_config& c);

}  // namespace ei::sim
