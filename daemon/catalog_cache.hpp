// What the router needs from the primary's catalogs (function volatility, temporary and unlogged
// tables), looked up once with a side query on the idle primary and cached in the child.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "daemon/router.hpp"
#include "parser/classify.hpp"

namespace splitpool::daemon {

// Runs one query on the primary and returns the first column of each row; nullopt when it may not
// run now (the primary is inside a transaction, where a failing lookup would abort the client's work).
using SideQuery = std::function<std::optional<std::vector<std::string>>(const std::string& sql)>;

class CatalogCache final : public RouteOracle {
public:
    // Looks up what `cls` mentions and is not cached yet. Names that cannot be looked up now are
    // answered conservatively (volatile, temporary), which only ever sends work to the primary.
    void prefetch(const parser::Classification& cls, bool check_functions, bool check_relations, const SideQuery& query);
    // Temporary-table answers belong to one session (its pooled connection is reset after it).
    void new_session() { temp_.clear(); }

    bool is_volatile_function(std::string_view name) const override;
    bool is_temp_table(std::string_view relation) const override;
    bool is_unlogged_table(std::string_view relation) const override;

private:
    std::map<std::string, bool, std::less<>> volatile_;   // function name -> any overload volatile
    std::map<std::string, char, std::less<>> persistence_;  // relation -> 'p' / 'u' (across sessions)
    std::map<std::string, bool, std::less<>> temp_;        // relation -> temporary (this session)
};

}  // namespace splitpool::daemon
