// Table-driven tests of even session placement: {weights, statuses, open sessions, rng} -> node.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "daemon/balancer.hpp"
#include "shm/status_table.hpp"

using namespace splitpool;
using daemon::Placement;

namespace {

class FixedRandom final : public daemon::RandomSource {
public:
    explicit FixedRandom(double v) : v_(v) {}
    double next_unit() override { return v_; }

private:
    double v_;
};

constexpr auto U = shm::NodeStatus::Up;
constexpr auto D = shm::NodeStatus::Down;
constexpr auto W = shm::NodeStatus::Waiting;

struct Case {
    const char* name;
    std::vector<double> weights;
    std::vector<int> sessions;  // -1 = not counted
    std::vector<shm::NodeStatus> status;
    double rng;                 // the one value the pick draws
    int want;
};

shm::NodeSnapshot nodes_of(const Case& c) {
    shm::NodeSnapshot s;
    s.num_nodes = int(c.weights.size());
    s.primary = 0;
    for (int i = 0; i < s.num_nodes; ++i) {
        s.nodes[i] = {c.status.empty() ? U : c.status[size_t(i)], i == 0 ? shm::NodeRole::Primary : shm::NodeRole::Standby,
                      c.weights[size_t(i)], c.sessions[size_t(i)]};
    }
    return s;
}

}  // namespace

TEST_CASE("even placement: the fewest sessions per weight; ties at random by weight") {
    const std::vector<Case> cases = {
        // Nothing open: every node ties, the weighted pick of pgpool (cumulative 1:2:2 over 5).
        {"no sessions, low draw", {1, 2, 2}, {0, 0, 0}, {}, 0.1, 0},
        {"no sessions, middle draw", {1, 2, 2}, {0, 0, 0}, {}, 0.5, 1},
        {"no sessions, high draw", {1, 2, 2}, {0, 0, 0}, {}, 0.9, 2},
        // 0:1:1 with long sessions: each goes where fewer are, whatever the draw.
        {"0:1:1 after one on node1", {0, 1, 1}, {0, 1, 0}, {}, 0.0, 2},
        {"0:1:1 after one on node2", {0, 1, 1}, {0, 0, 1}, {}, 0.99, 1},
        {"0:1:1 balanced: tie by weight", {0, 1, 1}, {0, 2, 2}, {}, 0.7, 2},
        {"weight 0 never chosen even when empty", {0, 1, 1}, {0, 3, 5}, {}, 0.0, 1},
        // Per weight: 1 session on weight 1 equals 2 on weight 2.
        {"1:2:2 proportional: three-way tie", {1, 2, 2}, {1, 2, 2}, {}, 0.1, 0},
        {"1:2:2 proportional: tie, high draw", {1, 2, 2}, {1, 2, 2}, {}, 0.9, 2},
        {"1:2:2 primary behind", {1, 2, 2}, {0, 1, 1}, {}, 0.99, 0},
        {"1:2:2 standby behind", {1, 2, 2}, {1, 2, 1}, {}, 0.0, 2},
        {"1:2:2 two tie, draw picks the heavier", {1, 2, 2}, {1, 3, 2}, {}, 0.5, 2},
        {"1:2:2 node0 and node2 tie at 1/1 and 2/2", {1, 2, 2}, {1, 3, 2}, {}, 0.2, 0},
        // Down nodes are no candidates; waiting counts as usable (pgpool's VALID_BACKEND_RAW).
        {"down node skipped although empty", {1, 1, 1}, {2, 0, 1}, {U, D, U}, 0.0, 2},
        {"waiting node usable", {1, 1, 1}, {2, 2, 0}, {U, U, W}, 0.0, 2},
        // Counts unknown (a statement-level or mid-session pick): pgpool's weighted pick.
        {"unknown counts: weighted", {1, 2, 2}, {-1, -1, -1}, {}, 0.5, 1},
        {"one unknown count: weighted", {1, 2, 2}, {0, -1, 9}, {}, 0.9, 2},
        // No candidate with a weight: -1 (choose_load_balance_node then falls back to the primary).
        {"all weights zero", {0, 0, 0}, {0, 0, 0}, {}, 0.5, -1},
        {"everything down", {1, 1, 1}, {0, 0, 0}, {D, D, D}, 0.5, -1},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        shm::NodeSnapshot s = nodes_of(c);
        FixedRandom rng(c.rng);
        CHECK(daemon::pick_even(s, daemon::usable_nodes(s), rng) == c.want);
    }
}

TEST_CASE("even placement: eight sessions on 0:1:1 land 4/4, and 1:2:2 fills 1:2:2") {
    struct Fill {
        std::vector<double> weights;
        int sessions;
        std::vector<int> want;
    };
    const std::vector<Fill> fills = {{{0, 1, 1}, 8, {0, 4, 4}}, {{1, 2, 2}, 10, {2, 4, 4}}, {{1, 1, 1}, 9, {3, 3, 3}},
                                     {{1, 3}, 8, {2, 6}}};
    daemon::Mt19937Random rng(99);
    for (const Fill& f : fills) {
        Case c{"fill", f.weights, std::vector<int>(f.weights.size(), 0), {}, 0, 0};
        shm::NodeSnapshot s = nodes_of(c);
        for (int i = 0; i < f.sessions; ++i) {
            int n = daemon::choose_load_balance_node(s, nullptr, rng, Placement::Even);
            REQUIRE(n >= 0);
            ++s.nodes[n].sessions;
        }
        for (size_t i = 0; i < f.want.size(); ++i) CHECK(s.nodes[i].sessions == f.want[i]);
    }
}

TEST_CASE("even placement: short sequential sessions keep pgpool's weighted shares") {
    shm::NodeSnapshot s = nodes_of({"seq", {1, 2, 2}, {0, 0, 0}, {}, 0, 0});
    daemon::Mt19937Random rng(5);
    int count[3] = {0, 0, 0};
    for (int i = 0; i < 10000; ++i) count[daemon::choose_load_balance_node(s, nullptr, rng, Placement::Even)]++;
    CHECK(std::abs(count[0] / 100.0 - 20.0) <= 2.0);
    CHECK(std::abs(count[1] / 100.0 - 40.0) <= 2.0);
    CHECK(std::abs(count[2] / 100.0 - 40.0) <= 2.0);
}

TEST_CASE("placement names") {
    Placement p = Placement::Random;
    CHECK(daemon::parse_placement("even", &p));
    CHECK(p == Placement::Even);
    CHECK(daemon::parse_placement("random", &p));
    CHECK(p == Placement::Random);
    CHECK_FALSE(daemon::parse_placement("Even", &p));
    CHECK_FALSE(daemon::parse_placement("", &p));
}

TEST_CASE("a standby redirect places evenly among the standbys") {
    std::vector<daemon::RedirectRule> rules;
    std::string err;
    REQUIRE(daemon::parse_redirect_list("app:standby", &rules, &err));
    shm::NodeSnapshot s = nodes_of({"redirect", {1, 1, 1}, {0, 3, 1}, {}, 0, 0});
    FixedRandom rng(0.0);  // honours the preference (ratio 1), then would pick node 1 at random
    CHECK(daemon::choose_load_balance_node(s, &rules[0], rng, Placement::Even) == 2);
    CHECK(daemon::choose_load_balance_node(s, &rules[0], rng, Placement::Random) == 1);
}
