// The routing decision: a pure function of (classification, session state, node snapshot, policy, rng).
#pragma once

#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "daemon/balancer.hpp"
#include "daemon/session_model.hpp"
#include "parser/classify.hpp"
#include "shm/status_table.hpp"

namespace splitpool::daemon {

enum class DisableLbOnWrite : uint8_t { Off, Transaction, TransTransaction, Always, DmlAdaptive };
enum class CheckTempTable : uint8_t { None, Catalog, Trace };

// Catalog knowledge the caller looks up once and caches (pg_proc, pg_class on the primary, the shared
// table of recently written relations, replication delay). Defaults answer "no", so tests override
// only what they need. Implementations must not block: the router calls them inline.
class RouteOracle {
public:
    virtual ~RouteOracle() = default;
    // pg_proc.provolatile = 'v' (used when write_function_list and read_only_function_list are empty).
    virtual bool is_volatile_function(std::string_view name) const { return (void)name, false; }
    virtual bool is_temp_table(std::string_view relation) const { return (void)relation, false; }        // check_temp_table = catalog
    virtual bool is_unlogged_table(std::string_view relation) const { return (void)relation, false; }    // check_unlogged_table
    // Cross-session read-your-writes: some session wrote the table (bare name) less than window_ms ago.
    virtual bool recently_written(std::string_view relation, int window_ms) const {
        return (void)relation, (void)window_ms, false;
    }
    virtual bool lagging(int node) const { return (void)node, false; }  // replication delay over the threshold
};

// The routing part of the configuration, independent of Config (the lead fills it from Config).
struct RoutingPolicy {
    bool load_balance_mode = true;
    bool statement_level_load_balance = false;
    DisableLbOnWrite disable_load_balance_on_write = DisableLbOnWrite::Transaction;
    bool allow_sql_comments = false;
    CheckTempTable check_temp_table = CheckTempTable::Catalog;
    bool check_unlogged_table = true;
    int read_your_writes_window_ms = 0;           // > 0: consult RouteOracle::recently_written
    bool prefer_lower_delay_standby = false;
    Placement placement = Placement::Even;        // load_balance_placement: a session's load-balance node
    std::vector<std::regex> write_functions;      // write_function_list (anchored, case-sensitive as pgpool)
    std::vector<std::regex> read_only_functions;  // read_only_function_list
    std::vector<std::regex> primary_routing_patterns;  // primary_routing_query_pattern_list (case-insensitive)
    // dml_adaptive_object_relationship_list: writing `first` also writes `second`; "f()" names a function.
    std::vector<std::pair<std::string, std::string>> dml_adaptive_relationships;
    RedirectLists redirects;
    const RouteOracle* oracle = nullptr;  // nullptr: no catalog knowledge (built-in volatile list only)
};

// Parsers for the pgpool-syntax settings; false + message on bad input, policy field left unchanged.
bool parse_disable_lb_on_write(std::string_view text, DisableLbOnWrite* out);
bool parse_check_temp_table(std::string_view text, CheckTempTable* out);  // also on/off as pgpool
// Comma-separated regexes; the two lists are mutually exclusive.
bool set_function_lists(RoutingPolicy* policy, std::string_view write_list, std::string_view read_only_list,
                        std::string* error);
// Semicolon-separated regexes ("\;" is a literal semicolon), matched against the whole statement text.
bool set_primary_routing_patterns(RoutingPolicy* policy, std::string_view text, std::string* error);
// "table_1:table_2,func():table_3".
bool set_dml_adaptive_relationships(RoutingPolicy* policy, std::string_view text, std::string* error);
// Adds the bare names of the tables a write changes, following dml_adaptive_object_relationship_list
// from what `into` already holds; false when the write's tables are unknown (a writing function).
bool add_written_tables(std::set<std::string>& into, const parser::Classification& cls, const RoutingPolicy& policy);

enum class Target : uint8_t {
    Primary,      // the primary only (node = primary id)
    Node,         // one node chosen by load balancing (node; may be the primary)
    Session,      // every node the session uses (nodes); joined to the transaction when one is open
    Transaction,  // every node of the current transaction (nodes)
    Nodes,        // an explicit set, e.g. where a prepared statement lives (nodes)
    Local,        // answered by splitpool itself (SET splitpool.*), sent nowhere
    None,         // no usable node (e.g. a write while no primary is known): the caller reports an error
};

struct RouteDecision {
    Target target = Target::None;
    int node = -1;                 // Primary / Node
    NodeSet nodes;                 // every node that gets the statement (also set for Primary / Node)
    bool load_balanced = false;    // a read sent to the load-balance choice (select counters)
    bool counts_as_write = false;  // a successful run makes the transaction / session "writing"
    bool new_load_balance_node = false;  // the session's node was down or unset: note_statement adopts `node`
    bool reprepare = false;        // EXECUTE/Bind of a statement not prepared on `node`: create it there first
    bool ends_transaction = false; // COMMIT/ROLLBACK: where a node failed, the others get ROLLBACK
    const PreparedStatement* prepared = nullptr;  // EXECUTE/Bind: the statement, created where it is missing
    bool movable = false;          // BEGIN: may start on whichever node its batch runs on (others join later)
    std::string_view reason;       // static text for debug logs
};

// Session start: resolves the redirect preference and picks the session's load-balance node.
void start_session(SessionModel& state, const shm::NodeSnapshot& nodes, const RoutingPolicy& policy,
                   RandomSource& rng);

// The decision for one statement. `sql` is the statement text (for primary_routing_query_pattern_list).
RouteDecision route(const parser::Classification& cls, std::string_view sql, const SessionModel& state,
                    const shm::NodeSnapshot& nodes, const RoutingPolicy& policy, RandomSource& rng);

// The decision for a Bind (or EXECUTE) of a prepared statement: routed as its statement would be
// now, staying on a standby where it already exists when balanced; `reprepare` when `node` lacks it.
RouteDecision route_prepared(const PreparedStatement& statement, const SessionModel& state,
                             const shm::NodeSnapshot& nodes, const RoutingPolicy& policy, RandomSource& rng);

// "read → node 2 (standby, load balance)" for debug logs.
std::string describe(const parser::Classification& cls, const RouteDecision& decision, const shm::NodeSnapshot& nodes);

// Whether a called function counts as writing under the policy (lists, oracle, built-ins).
bool is_writing_function(std::string_view name, const RoutingPolicy& policy);

}  // namespace splitpool::daemon
