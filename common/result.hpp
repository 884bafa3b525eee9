// Errors as values (result, error, status): defined in the public include/export_items/result.hpp
// because the embedding API returns them; included here under the name the components use.
#pragma once

#include "export_items/result.hpp"
