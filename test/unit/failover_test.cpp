// Unit tests for failover decisions: the primary vote (ALWAYS_PRIMARY, pg_is_in_recovery(), which
// node the standbys follow) and the expansion of pgpool's hook placeholders.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "daemon/hook.hpp"
#include "daemon/primary_vote.hpp"

using namespace splitpool::daemon;

namespace {

// P: primary (not in recovery); S<n>: standby streaming from node n; S-: standby, no sender;
// D: detached (skipped); ?: did not answer; A: ALWAYS_PRIMARY (and down in recovery: still wins).
std::vector<NodeSeen> nodes(const std::vector<std::string>& codes) {
    std::vector<NodeSeen> out;
    for (const std::string& c : codes) {
        NodeSeen n;
        n.usable = c != "D";
        n.known = c != "?" && c != "D";
        n.in_recovery = c[0] == 'S';
        n.always_primary = c == "A";
        if (c[0] == 'S' && c.size() > 1 && c[1] != '-') n.upstream = c[1] - '0';
        out.push_back(n);
    }
    return out;
}

struct VoteCase {
    const char* what;
    std::vector<std::string> codes;
    int current;
    int primary;
    std::vector<int> false_primaries;
};

}  // namespace

TEST_CASE("the primary vote") {
    const VoteCase cases[] = {
        {"one primary, two standbys", {"P", "S0", "S0"}, 0, 0, {}},
        {"the primary is node 2", {"S2", "S2", "P"}, 0, 2, {}},
        {"nothing answered", {"?", "?", "?"}, 0, -1, {}},
        {"every node in recovery (the search goes on)", {"S-", "S-", "S-"}, -1, -1, {}},
        {"old primary detached, node 1 promoted, node 2 still on node 0", {"D", "P", "S0"}, -1, 1, {}},
        {"old primary detached, node 1 promoted, node 2 follows it", {"D", "P", "S1"}, -1, 1, {}},
        {"a promoted standby nobody follows is a false primary", {"P", "S0", "P"}, 0, 0, {2}},
        {"the followed one wins even when it is not the current one", {"P", "P", "S1"}, 0, 1, {0}},
        {"two primaries, nobody follows either: the current one, none false", {"P", "P"}, 1, 1, {}},
        {"two primaries, nobody follows either, no current: the first", {"P", "P", "S-"}, -1, 0, {}},
        {"a tie between followed primaries keeps the current one", {"P", "S0", "P", "S2"}, 2, 2, {0}},
        {"a tie without a current primary: the lowest id", {"P", "S0", "P", "S2"}, -1, 0, {2}},
        {"a detached primary is never chosen", {"D", "S0", "S0"}, 0, -1, {}},
        {"a standby following an unknown sender counts for nobody", {"P", "S9", "P"}, 0, 0, {}},
        {"ALWAYS_PRIMARY wins whatever the nodes say", {"S1", "A", "P"}, 2, 1, {}},
    };
    for (const VoteCase& c : cases) {
        CAPTURE(c.what);
        PrimaryVote v = vote_primary(nodes(c.codes), c.current);
        CHECK(v.primary == c.primary);
        CHECK(v.false_primaries == c.false_primaries);
    }
}

TEST_CASE("hook placeholders as pgpool expands them") {
    Config c;
    c.backends = {{"h0", 5432, 1, kFlagAllowToFailover, "node0", "/d0"},
                  {"h1", 5433, 1, kFlagAllowToFailover, "node1", "/d1"},
                  {"h2", 5434, 1, kFlagAllowToFailover, "node2", "/d2"}};
    HookEvent follow;  // node 2 follows node 1, promoted after node 0 (old primary and main) failed
    follow.node = 2;
    follow.new_main = 1;
    follow.old_main = 0;
    follow.old_primary = 0;
    const struct {
        const char* command;
        HookEvent event;
        const char* expanded;
    } cases[] = {
        {"%d %h %p %D", follow, "2 h2 5434 /d2"},
        {"%m %H %r %R", follow, "1 h1 5433 /d1"},
        {"%M %P %N %S", follow, "0 0 h0 5432"},
        {"100%% %x %", follow, "100% %x %"},
        {"%d %h %m %H %D", HookEvent{}, "-1  -1  "},
        {"no placeholders", follow, "no placeholders"},
    };
    for (const auto& k : cases) {
        CAPTURE(k.command);
        CHECK(expand_hook(k.command, c, k.event) == k.expanded);
    }
}
