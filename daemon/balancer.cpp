// Load-balance node choice (even or weighted random placement) and pgpool's redirect preference lists.
#include "daemon/balancer.hpp"

#include <charconv>
#include <cstdlib>

namespace splitpool::daemon {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Splits on commas that are outside (...) and [...], since both appear inside regexes and ratios.
std::vector<std::string_view> split_entries(std::string_view text) {
    std::vector<std::string_view> out;
    int depth = 0;
    size_t start = 0;
    for (size_t i = 0; i <= text.size(); ++i) {
        char c = i < text.size() ? text[i] : ',';
        if (c == '(' || c == '[' || c == '{') ++depth;
        else if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
        else if (c == ',' && (depth == 0 || i == text.size())) {
            std::string_view e = trim(text.substr(start, i - start));
            if (!e.empty()) out.push_back(e);
            start = i + 1;
        }
    }
    return out;
}

bool parse_target(std::string_view t, RedirectRule* rule, std::string* error) {
    size_t paren = t.find('(');
    if (paren != std::string_view::npos) {
        if (t.back() != ')') return *error = "missing ')' in ratio", false;
        std::string ratio(trim(t.substr(paren + 1, t.size() - paren - 2)));
        char* end = nullptr;
        rule->ratio = std::strtod(ratio.c_str(), &end);
        if (ratio.empty() || *end || rule->ratio < 0.0 || rule->ratio > 1.0)
            return *error = "ratio must be between 0 and 1", false;
        t = trim(t.substr(0, paren));
    }
    if (t == "primary") rule->target = RedirectRule::Target::Primary;
    else if (t == "standby") rule->target = RedirectRule::Target::Standby;
    else {
        auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), rule->node);
        if (ec != std::errc() || p != t.data() + t.size() || rule->node < 0 || rule->node >= shm::kMaxNodes)
            return *error = "target must be a node id, primary or standby", false;
        rule->target = RedirectRule::Target::Node;
    }
    return true;
}

bool parse_entry(std::string_view entry, RedirectRule* rule, std::string* error) {
    size_t colon = entry.rfind(':');
    if (colon == std::string_view::npos) return *error = "missing ':'", false;
    std::string_view target = trim(entry.substr(colon + 1));
    rule->pattern_text = std::string(trim(entry.substr(0, colon)));
    if (rule->pattern_text.empty() || target.empty()) return *error = "empty pattern or target", false;
    if (!parse_target(target, rule, error)) return false;
    try {
        rule->pattern = std::regex(rule->pattern_text, std::regex::extended | std::regex::icase | std::regex::nosubs);
    } catch (const std::regex_error& e) {
        return *error = std::string("bad regex: ") + e.what(), false;
    }
    return true;
}

const RedirectRule* first_match(const std::vector<RedirectRule>& rules, std::string_view name) {
    if (name.empty()) return nullptr;
    for (const RedirectRule& r : rules)
        if (std::regex_match(name.begin(), name.end(), r.pattern)) return &r;
    return nullptr;
}

int fallback(const shm::NodeSnapshot& nodes) {
    if (node_usable(nodes, nodes.primary)) return nodes.primary;
    for (int i = 0; i < nodes.num_nodes; ++i)
        if (node_usable(nodes, i)) return i;
    return -1;
}

}  // namespace

bool node_usable(const shm::NodeSnapshot& nodes, int id) {
    if (id < 0 || id >= nodes.num_nodes || id >= shm::kMaxNodes) return false;
    shm::NodeStatus s = nodes.nodes[id].status;
    return s == shm::NodeStatus::Up || s == shm::NodeStatus::Waiting;
}

NodeSet usable_nodes(const shm::NodeSnapshot& nodes) {
    NodeSet out;
    for (int i = 0; i < nodes.num_nodes && i < shm::kMaxNodes; ++i)
        if (node_usable(nodes, i)) out.set(static_cast<size_t>(i));
    return out;
}

NodeSet usable_standbys(const shm::NodeSnapshot& nodes) {
    NodeSet out = usable_nodes(nodes);
    if (nodes.primary >= 0 && nodes.primary < shm::kMaxNodes) out.reset(static_cast<size_t>(nodes.primary));
    return out;
}

int pick_weighted(const shm::NodeSnapshot& nodes, const NodeSet& candidates, RandomSource& rng) {
    double total = 0.0;
    for (int i = 0; i < nodes.num_nodes && i < shm::kMaxNodes; ++i)
        if (candidates.test(static_cast<size_t>(i)) && node_usable(nodes, i) && nodes.nodes[i].weight > 0.0)
            total += nodes.nodes[i].weight;
    if (total <= 0.0) return -1;
    double r = rng.next_unit() * total;
    int last = -1;
    for (int i = 0; i < nodes.num_nodes && i < shm::kMaxNodes; ++i) {
        if (!candidates.test(static_cast<size_t>(i)) || !node_usable(nodes, i) || nodes.nodes[i].weight <= 0.0)
            continue;
        last = i;
        r -= nodes.nodes[i].weight;
        if (r < 0.0) return i;
    }
    return last;  // r rounded to exactly total
}

bool parse_placement(std::string_view text, Placement* out) {
    if (text == "even") *out = Placement::Even;
    else if (text == "random") *out = Placement::Random;
    else return false;
    return true;
}

int pick_even(const shm::NodeSnapshot& nodes, const NodeSet& candidates, RandomSource& rng) {
    // The lowest sessions/weight, compared as products so equal ratios tie exactly.
    NodeSet eligible;
    int best = -1;
    for (int i = 0; i < nodes.num_nodes && i < shm::kMaxNodes; ++i) {
        const shm::NodeSnapshot::Node& n = nodes.nodes[i];
        if (!candidates.test(static_cast<size_t>(i)) || !node_usable(nodes, i) || n.weight <= 0.0) continue;
        if (n.sessions < 0) return pick_weighted(nodes, candidates, rng);
        eligible.set(static_cast<size_t>(i));
        if (best < 0 || n.sessions * nodes.nodes[best].weight < nodes.nodes[best].sessions * n.weight) best = i;
    }
    if (best < 0) return -1;
    NodeSet ties;
    const shm::NodeSnapshot::Node& b = nodes.nodes[best];
    for (int i = 0; i < nodes.num_nodes && i < shm::kMaxNodes; ++i)
        if (eligible.test(static_cast<size_t>(i)) && nodes.nodes[i].sessions * b.weight == b.sessions * nodes.nodes[i].weight)
            ties.set(static_cast<size_t>(i));
    return pick_weighted(nodes, ties, rng);
}

int pick_placed(const shm::NodeSnapshot& nodes, const NodeSet& candidates, Placement placement, RandomSource& rng) {
    return placement == Placement::Even ? pick_even(nodes, candidates, rng) : pick_weighted(nodes, candidates, rng);
}

bool parse_redirect_list(std::string_view text, std::vector<RedirectRule>* out, std::string* error) {
    out->clear();
    for (std::string_view entry : split_entries(text)) {
        RedirectRule rule;
        std::string why;
        if (!parse_entry(entry, &rule, &why)) {
            *error = "redirect preference '" + std::string(entry) + "': " + why;
            out->clear();
            return false;
        }
        out->push_back(std::move(rule));
    }
    return true;
}

const RedirectRule* find_redirect(const RedirectLists& lists, std::string_view database, std::string_view user,
                                  std::string_view application_name) {
    if (const RedirectRule* r = first_match(lists.app_name, application_name)) return r;
    if (const RedirectRule* r = first_match(lists.database, database)) return r;
    return first_match(lists.user, user);
}

int choose_load_balance_node(const shm::NodeSnapshot& nodes, const RedirectRule* redirect, RandomSource& rng,
                             Placement placement) {
    NodeSet all = usable_nodes(nodes);
    int chosen = -1;
    if (redirect && redirect->target == RedirectRule::Target::Standby) {
        // Among standbys with probability `ratio`, otherwise the primary.
        if (rng.next_unit() < redirect->ratio) chosen = pick_placed(nodes, usable_standbys(nodes), placement, rng);
        else if (node_usable(nodes, nodes.primary)) chosen = nodes.primary;
    } else if (redirect) {
        int want = redirect->target == RedirectRule::Target::Primary ? nodes.primary : redirect->node;
        if (node_usable(nodes, want)) {
            if (rng.next_unit() < redirect->ratio) return want;
            all.reset(static_cast<size_t>(want));  // declined: a pick among the others
        }
        chosen = pick_placed(nodes, all, placement, rng);
    } else {
        chosen = pick_placed(nodes, all, placement, rng);
    }
    return chosen >= 0 ? chosen : fallback(nodes);
}

}  // namespace splitpool::daemon
