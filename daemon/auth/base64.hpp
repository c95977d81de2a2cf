// Standard base64 (RFC 4648, with padding) as SCRAM and pg_authid verifiers use it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace splitpool::auth {

std::string base64_encode(std::string_view data);

// Strict: the length must be a multiple of 4, padding only at the end, no whitespace.
// std::nullopt for anything else, so a malformed peer message cannot decode to garbage.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace splitpool::auth
