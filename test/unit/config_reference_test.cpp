// The committed configuration reference (docs/configuration.md) must be what the key table generates.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/config.hpp"
#include "daemon/config_reference.hpp"

using namespace splitpool::daemon;

TEST_CASE("docs/configuration.md is up to date with the key table (run `make docs`)") {
    auto path = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "docs" / "configuration.md";
    std::ifstream in(path);
    REQUIRE_MESSAGE(in, "cannot read " << path.string());
    std::stringstream committed;
    committed << in.rdbuf();
    bool same = committed.str() == config_reference_markdown();
    CHECK_MESSAGE(same, "docs/configuration.md differs from `splitpool --config-reference`: run `make docs`");
}

TEST_CASE("the reference names every key and every backend key") {
    std::string md = config_reference_markdown();
    for (const KeyInfo& k : config_keys()) CHECK_MESSAGE(md.find("| `" + std::string(k.name) + "` |") != std::string::npos, k.name);
    for (std::string_view k : backend_key_names()) CHECK(md.find("| `" + std::string(k) + "` |") != std::string::npos);
}
