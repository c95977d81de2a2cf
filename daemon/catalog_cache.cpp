// What the router needs to know beyond the statement: the primary's catalogs, and recent writes.
#include "daemon/catalog_cache.hpp"

#include "daemon/io/conn.hpp"

namespace splitpool::daemon {
namespace {

std::string literal(std::string_view s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += '\'';
        out += c;
    }
    return out + "'";
}

}  // namespace

void CatalogCache::prefetch(const parser::Classification& cls, bool check_functions, bool check_relations,
                            const SideQuery& query) {
    if (check_functions)
        for (const auto& f : cls.functions) {
            if (volatile_.count(f)) continue;
            size_t dot = f.rfind('.');
            std::string name = dot == std::string::npos ? f : f.substr(dot + 1);
            std::string sql = "SELECT coalesce(bool_or(provolatile = 'v'), false) FROM pg_catalog.pg_proc p "
                              "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE proname = " + literal(name);
            if (dot != std::string::npos) sql += " AND nspname = " + literal(f.substr(0, dot));
            if (auto rows = query(sql); rows && rows->size() == 1) volatile_[f] = (*rows)[0] == "t";
        }
    if (check_relations)
        for (const auto& r : cls.relations) {
            if (persistence_.count(r) || temp_.count(r)) continue;
            // to_regclass never raises for a missing relation; quote_ident keeps the name as written
            auto rows = query("SELECT coalesce((SELECT relpersistence FROM pg_catalog.pg_class WHERE oid = "
                              "pg_catalog.to_regclass(" + literal(r) + ")), 'p')");
            if (!rows || rows->size() != 1 || (*rows)[0].empty()) continue;
            char p = (*rows)[0][0];
            if (p == 't') temp_[r] = true;
            else persistence_[r] = p;
        }
}

bool CatalogCache::is_volatile_function(std::string_view name) const {
    auto it = volatile_.find(name);
    return it == volatile_.end() || it->second;
}

bool CatalogCache::is_temp_table(std::string_view relation) const {
    if (temp_.count(relation)) return true;
    return !persistence_.count(relation);  // not looked up: assume temporary, i.e. primary
}

bool CatalogCache::is_unlogged_table(std::string_view relation) const {
    auto it = persistence_.find(relation);
    return it != persistence_.end() && it->second == 'u';
}

bool CatalogCache::recently_written(std::string_view relation, int window_ms) const {
    return table_ && table_->relation_written_within(relation, io::now_ms(), window_ms);
}

bool CatalogCache::lagging(int node) const {
    if (!table_ || node < 0 || node >= table_->num_nodes()) return false;
    const shm::NodeSlot& n = table_->node(node);
    if (delay_ms_ > 0) return n.replication_lag_us.load(std::memory_order_relaxed) > delay_ms_ * 1000;
    return delay_bytes_ > 0 && n.replication_delay.load(std::memory_order_relaxed) > delay_bytes_;
}

}  // namespace splitpool::daemon
