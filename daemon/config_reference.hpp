// The configuration reference (docs/configuration.md), generated from the key table.
#pragma once

#include <string>

namespace splitpool::daemon {

// Markdown: every key by section with its type, default, reload policy and description, then the
// [[backend]] keys. `splitpool --config-reference` prints it; `make docs` writes docs/configuration.md.
std::string config_reference_markdown();

}  // namespace splitpool::daemon
