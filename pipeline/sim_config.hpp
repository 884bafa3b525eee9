// The embedded simulator's settings of a stage config (`embedded` section) as the simulator's
// own config: one mapping for the config-file reader (ei_stage_config) and the command line's
// embedded simulator (apps/embedded_sim). Not part of ei_pipeline: it names simulator types.
#pragma once

#include "pipeline/config.hpp"
#include "simulator/config.hpp"

namespace ei::pipeline {

/// Every simulator setting `embedded` carries (host, port and api_key are the caller's).
sim::sim_config to_sim(const embedded_simulator& e);

}  // namespace ei::pipeline
