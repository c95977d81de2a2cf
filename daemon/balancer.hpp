// Choosing the load-balance node: even or weighted-random placement over usable nodes, and pgpool's
// redirect preference lists.
#pragma once

#include <bitset>
#include <cstdint>
#include <random>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "shm/status_table.hpp"

namespace splitpool::daemon {

using NodeSet = std::bitset<shm::kMaxNodes>;

// Injected randomness, so routing is deterministic under test.
class RandomSource {
public:
    virtual ~RandomSource() = default;
    virtual double next_unit() = 0;  // uniform in [0, 1)
};

class Mt19937Random final : public RandomSource {
public:
    explicit Mt19937Random(uint64_t seed) : gen_(seed) {}
    double next_unit() override { return std::uniform_real_distribution<double>(0.0, 1.0)(gen_); }

private:
    std::mt19937_64 gen_;
};

// Up or waiting (pgpool's VALID_BACKEND_RAW): may receive statements.
bool node_usable(const shm::NodeSnapshot& nodes, int id);
NodeSet usable_nodes(const shm::NodeSnapshot& nodes);
// Usable nodes other than the primary.
NodeSet usable_standbys(const shm::NodeSnapshot& nodes);

// Weighted random pick among the usable nodes of `candidates` (weight <= 0 never chosen);
// cumulative scan in node-id order as pgpool does. -1 when no candidate has a positive weight.
int pick_weighted(const shm::NodeSnapshot& nodes, const NodeSet& candidates, RandomSource& rng);

// How a session's load-balance node is chosen (load_balance_placement).
enum class Placement : uint8_t {
    Even,    // beyond pgpool: fewest open sessions per weight, ties at random by weight
    Random,  // pgpool: at random by weight, whatever the other sessions use
};
bool parse_placement(std::string_view text, Placement* out);  // "even" | "random"

// Even placement among the usable candidates with a positive weight: those with the lowest
// sessions / weight (NodeSnapshot::Node::sessions), then a weighted pick among them. With no session
// open anywhere every candidate ties, which is pgpool's weighted random pick. When a candidate's
// count is unknown (-1) it is the weighted pick over all candidates. -1 when none has a weight.
int pick_even(const shm::NodeSnapshot& nodes, const NodeSet& candidates, RandomSource& rng);
int pick_placed(const shm::NodeSnapshot& nodes, const NodeSet& candidates, Placement placement, RandomSource& rng);

// One entry of a *_redirect_preference_list: `pattern:target(ratio)`.
struct RedirectRule {
    enum class Target : uint8_t { Node, Primary, Standby };
    std::string pattern_text;
    std::regex pattern;  // anchored: must match the whole name, case-insensitive
    Target target = Target::Node;
    int node = -1;       // Target::Node
    double ratio = 1.0;  // 0..1: probability of honouring the preference
};

// The three lists; precedence app_name > database > user (the first list with a match decides).
struct RedirectLists {
    std::vector<RedirectRule> app_name, database, user;
};

// Parses pgpool's syntax, e.g. "postgres:primary,mydb[0-4]:1(0.3),bi.*:standby". Empty text = no rules.
// False with a message on a bad entry or regex (nothing thrown).
bool parse_redirect_list(std::string_view text, std::vector<RedirectRule>* out, std::string* error);

// The rule that applies to a session, or nullptr.
const RedirectRule* find_redirect(const RedirectLists& lists, std::string_view database, std::string_view user,
                                  std::string_view application_name);

// pgpool's select_load_balancing_node(): the redirect preference when one applies, else a pick (by
// `placement`) over usable nodes including the primary; a declined preference or a `standby` target
// also picks by `placement` among the rest. Falls back to the primary, then -1 when nothing is usable.
int choose_load_balance_node(const shm::NodeSnapshot& nodes, const RedirectRule* redirect, RandomSource& rng,
                             Placement placement = Placement::Random);

}  // namespace splitpool::daemon
