// Which node is the primary, from what the replication worker saw of each node (pgpool's
// find_primary_node and verify_backend_node_status): a pure decision, table-tested.
#pragma once

#include <cstddef>
#include <vector>

namespace splitpool::daemon {

// One node as the worker saw it in this round.
struct NodeSeen {
    bool usable = false;        // up or waiting: a detached node is never chosen
    bool known = false;         // it answered pg_is_in_recovery()
    bool in_recovery = false;
    bool always_primary = false;
    int upstream = -1;          // a standby: the node its WAL receiver streams from (-1: none, unknown)
};

struct PrimaryVote {
    int primary = -1;                   // -1: none found
    std::vector<int> false_primaries;   // nodes that are not in recovery but are not the primary
};

// ALWAYS_PRIMARY wins. Else the usable nodes not in recovery are candidates; with more than one, the
// one most standbys stream from is the primary (on a tie `current`, the primary so far, else the lowest
// id, as pgpool's first found) and the others are false primaries. A lone candidate is the primary,
// whoever its standbys follow; candidates no standby follows are told apart by nothing: none is false.
PrimaryVote vote_primary(const std::vector<NodeSeen>& nodes, int current);

}  // namespace splitpool::daemon
