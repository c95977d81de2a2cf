// Internal to parser/: a generic walk over libpg_query's protobuf tree and small node helpers.
#pragma once

#include <pg_query/pg_query.pb-c.h>

#include <string>
#include <vector>

namespace splitpool::parser {

// What one walk over a statement found. Filled by collect_facts().
struct TreeFacts {
    std::vector<std::string> functions;
    std::vector<std::string> relations;          // every RangeVar, as "schema.name" or "name"
    std::vector<std::string> dml_targets;        // INSERT/UPDATE/DELETE/MERGE target relations
    std::vector<std::string> cte_names;
    bool locking = false;                        // any FOR UPDATE/SHARE clause
    bool into = false;                           // any SELECT ... INTO
    int dml_count = 0;                           // INSERT/UPDATE/DELETE/MERGE nodes, the root included
    bool catalog = false;                        // pg_catalog / information_schema / unqualified pg_*
};

// Visits every message under `root` through protobuf-c's descriptors, so no node type is missed
// when PostgreSQL's grammar grows: functions in a LATERAL subquery count as much as in the target list.
void collect_facts(const ProtobufCMessage* root, TreeFacts* facts);

// "schema.name" or "name" as written (already case-folded by the parser unless quoted).
std::string range_var_name(const PgQuery__RangeVar* rv);

// The String items of a List node (or of a node array) joined by '.'.
std::string join_names(PgQuery__Node* const* items, size_t n);

// A constant argument as text, lowercased: A_Const (through TypeCast), or "" when not a constant.
std::string const_text(const PgQuery__Node* node);

}  // namespace splitpool::parser
