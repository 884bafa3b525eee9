// The one place where the protocol's message types and error categories are named for CAF
// 0.17 (`actor_system_config::add_message_type`, `add_error_category`): every struct that
// travels between the stage's actors, with the name it is serialised under, and the
// categories of actors/errors.hpp. Every actor system the stage creates calls it; a host that
// embeds the stage in its own system may call it on its config too (local messaging works
// without it; names matter once messages are serialised).
#pragma once

#include <caf/actor_system_config.hpp>

namespace ei::actors {

/// Registers every message type of actors/*.hpp and the error categories of
/// actors/errors.hpp with `cfg`. Call it once per config, before the actor system starts.
void add_message_types(caf::actor_system_config& cfg);

}  // namespace ei::actors
