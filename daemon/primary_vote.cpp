// The primary vote: ALWAYS_PRIMARY, else the candidate the standbys follow.
#include "daemon/primary_vote.hpp"

namespace splitpool::daemon {

PrimaryVote vote_primary(const std::vector<NodeSeen>& nodes, int current) {
    PrimaryVote vote;
    for (size_t i = 0; i < nodes.size(); ++i)
        if (nodes[i].always_primary) {
            vote.primary = int(i);
            return vote;
        }
    std::vector<int> candidates;
    std::vector<int> followers(nodes.size(), 0);
    for (size_t i = 0; i < nodes.size(); ++i) {
        const NodeSeen& n = nodes[i];
        if (!n.usable || !n.known) continue;
        if (!n.in_recovery) candidates.push_back(int(i));
        else if (n.upstream >= 0 && size_t(n.upstream) < nodes.size()) ++followers[size_t(n.upstream)];
    }
    if (candidates.empty()) return vote;
    vote.primary = candidates.front();
    for (int c : candidates)
        if (c == current && followers[size_t(c)] >= followers[size_t(vote.primary)]) vote.primary = c;
        else if (followers[size_t(c)] > followers[size_t(vote.primary)]) vote.primary = c;
    if (followers[size_t(vote.primary)] == 0) return vote;
    for (int c : candidates)
        if (c != vote.primary) vote.false_primaries.push_back(c);
    return vote;
}

}  // namespace splitpool::daemon
