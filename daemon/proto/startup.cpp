// The StartupMessage: decoding the client's, and encoding the one splitpool sends to each backend.
#include "daemon/proto/startup.hpp"

#include <algorithm>

#include "daemon/proto/frame.hpp"
#include "daemon/proto/writer.hpp"

namespace splitpool::proto {

const std::string* StartupMessage::find(std::string_view name) const {
    for (const auto& [k, v] : params)
        if (k == name) return &v;
    return nullptr;
}

std::string StartupMessage::user() const {
    const std::string* u = find("user");
    return u ? *u : std::string();
}

std::string StartupMessage::database() const {
    const std::string* d = find("database");
    return d && !d->empty() ? *d : user();
}

std::string StartupMessage::application_name() const {
    const std::string* a = find("application_name");
    return a ? *a : std::string();
}

std::string StartupMessage::pool_key() const {
    auto sorted = params;
    std::sort(sorted.begin(), sorted.end());
    std::string key;
    for (const auto& [k, v] : sorted) {
        key += k;
        key += '\0';
        key += v;
        key += '\0';
    }
    return key;
}

bool decode_startup(const char* body, size_t size, StartupMessage& out, std::string* error) {
    Reader r(body, size);
    out.protocol = r.i32();
    if (!r.ok() || (out.protocol >> 16) != 3) {
        if (error) *error = "unsupported frontend protocol " + std::to_string(out.protocol >> 16) + "." +
                            std::to_string(out.protocol & 0xffff) + ": server supports 3.0 to 3.0";
        return false;
    }
    out.params.clear();
    bool terminated = false;
    while (r.ok() && r.remaining() > 0) {
        std::string_view name = r.cstr();
        if (name.empty()) {  // the terminating NUL (or a failed read)
            terminated = r.ok();
            break;
        }
        std::string_view value = r.cstr();
        if (r.ok()) out.params.emplace_back(std::string(name), std::string(value));
    }
    if (!r.ok() || !terminated || r.remaining() != 0) {
        if (error) *error = "invalid startup packet layout: expected terminator as last byte";
        return false;
    }
    if (out.user().empty()) {
        if (error) *error = "no PostgreSQL user name specified in startup packet";
        return false;
    }
    return true;
}

void put_startup(std::string& out, const StartupMessage& message) {
    Writer w(out);
    w.begin_untyped().i32(kProtocolVersion3);
    for (const auto& [k, v] : message.params) w.cstr(k).cstr(v);
    w.byte(0).finish();
}

}  // namespace splitpool::proto
