// The StartupMessage: decoding the client's, and encoding the one splitpool sends to each backend.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace splitpool::proto {

struct StartupMessage {
    int32_t protocol = 0;
    // Parameters in the client's order; "user" and "database" among them.
    std::vector<std::pair<std::string, std::string>> params;

    const std::string* find(std::string_view name) const;
    std::string user() const;
    std::string database() const;        // defaults to the user name, as PostgreSQL does
    std::string application_name() const;
    // Identifies a reusable backend connection set: every parameter, sorted by name (as pgpool
    // compares whole startup packets), so a client with another application_name gets its own set.
    std::string pool_key() const;
};

// Decodes the body after the length word. Fails on a missing user, an unterminated list or
// protocol other than 3.x; `error` then says why.
bool decode_startup(const char* body, size_t size, StartupMessage& out, std::string* error);
void put_startup(std::string& out, const StartupMessage& message);

}  // namespace splitpool::proto
