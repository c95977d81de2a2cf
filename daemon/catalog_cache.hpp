// What the router needs to know beyond the statement: the primary's catalogs (function volatility,
// temporary and unlogged tables), looked up once with a side query on the idle primary and cached in
// the child, and the shared table of recent writes (cross-session read-your-writes).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "daemon/router.hpp"
#include "parser/classify.hpp"
#include "shm/status_table.hpp"

namespace splitpool::daemon {

// Runs one query on the primary and returns the first column of each row; nullopt when it may not
// run now (the primary's transaction has failed) or failed (inside a transaction, under a savepoint).
using SideQuery = std::function<std::optional<std::vector<std::string>>(const std::string& sql)>;

class CatalogCache final : public RouteOracle {
public:
    explicit CatalogCache(const shm::StatusTable* table = nullptr) : table_(table) {}

    // Looks up what `cls` mentions and is not cached yet. Names that cannot be looked up now are
    // answered conservatively (volatile, temporary), which only ever sends work to the primary.
    void prefetch(const parser::Classification& cls, bool check_functions, bool check_relations, const SideQuery& query);
    // Temporary-table answers belong to one session (its pooled connection is reset after it).
    void new_session() { temp_.clear(); }

    bool is_volatile_function(std::string_view name) const override;
    bool is_temp_table(std::string_view relation) const override;
    bool is_unlogged_table(std::string_view relation) const override;
    bool recently_written(std::string_view relation, int window_ms) const override;
    // delay_threshold (bytes) and delay_threshold_by_time (ms; wins when > 0), 0 = off.
    void set_delay_thresholds(int64_t bytes, int64_t ms) { delay_bytes_ = bytes, delay_ms_ = ms; }
    // From the replication worker's measurements in shared memory; unknown delay is not lagging.
    bool lagging(int node) const override;

private:
    const shm::StatusTable* table_;
    int64_t delay_bytes_ = 0, delay_ms_ = 0;
    std::map<std::string, bool, std::less<>> volatile_;   // function name -> any overload volatile
    std::map<std::string, char, std::less<>> persistence_;  // relation -> 'p' / 'u' (across sessions)
    std::map<std::string, bool, std::less<>> temp_;        // relation -> temporary (this session)
};

}  // namespace splitpool::daemon
