// libFuzzer target: pcp.conf parsing, the lookup the PCP login does (from a file, as on every
// login), and the salted md5 response computed from each stored hash.
#include <string>

#include "pcp/pcp_conf.hpp"
#include "pcp/wire.hpp"
#include "test/fuzz/fuzz_common.hpp"

using namespace splitpool;

namespace {

fuzz::MemFile* g_file = nullptr;

size_t count_lines(std::string_view text) {
    size_t n = 1;
    for (char c : text) n += c == '\n';
    return n;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::quiet_logging();
    static fuzz::MemFile file("pcp.conf");
    g_file = &file;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > fuzz::kMaxInput) return -1;
    std::string_view text = fuzz::as_text(data, size);
    pcp::PcpConf conf = pcp::parse_pcp_conf(text);
    FUZZ_CHECK(conf.users.size() + conf.errors.size() <= count_lines(text));
    static const unsigned char salt[pcp::kSaltLength] = {1, 2, 3, 4};
    for (const pcp::PcpUser& u : conf.users) {
        FUZZ_CHECK(!u.name.empty() && u.name.size() <= 128, u.name);
        FUZZ_CHECK(!u.password_md5.empty() && u.password_md5.size() <= 128);
        FUZZ_CHECK(u.name.find(':') == std::string::npos && u.name.find('\n') == std::string::npos);
        FUZZ_CHECK(u.password_md5.find('\n') == std::string::npos);
        FUZZ_CHECK(u.password_md5.back() != '\r' && u.password_md5.back() != ' ' && u.password_md5.back() != '\t');
        std::string response = pcp::salted_response(u.password_md5, u.name, salt);
        FUZZ_CHECK(response.size() == 32, response);
    }
    for (const std::string& e : conf.errors) FUZZ_CHECK(e.rfind("line ", 0) == 0, e);

    // The login path reads the file itself: the first line of a user wins.
    {
        const std::string& path = g_file->set(text);
        std::string error;
        if (!conf.users.empty()) {
            const pcp::PcpUser& first = conf.users.front();
            std::optional<std::string> hash = pcp::lookup_pcp_user(path, first.name, &error);
            FUZZ_CHECK(hash && *hash == first.password_md5, "lookup_pcp_user disagrees with parse_pcp_conf");
        }
        std::optional<std::string> none = pcp::lookup_pcp_user(path, std::string(129, 'u'), &error);
        FUZZ_CHECK(!none && error.empty());
    }
    return 0;
}
