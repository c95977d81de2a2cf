// Generic descriptor-driven walk over libpg_query's protobuf tree, collecting what routing needs.
#include "parser/tree_walk.hpp"

#include <algorithm>
#include <cctype>

namespace splitpool::parser {

namespace {

// Children of one message: every set message-typed field, repeated or not, oneof or not.
template <typename Fn>
void for_each_child(const ProtobufCMessage* msg, Fn&& fn) {
    const ProtobufCMessageDescriptor* desc = msg->descriptor;
    const auto* base = reinterpret_cast<const char*>(msg);
    for (unsigned i = 0; i < desc->n_fields; ++i) {
        const ProtobufCFieldDescriptor& f = desc->fields[i];
        if (f.type != PROTOBUF_C_TYPE_MESSAGE) continue;
        if (f.label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *reinterpret_cast<const size_t*>(base + f.quantifier_offset);
            auto* arr = *reinterpret_cast<ProtobufCMessage* const* const*>(base + f.offset);
            for (size_t k = 0; k < n; ++k)
                if (arr[k]) fn(arr[k]);
            continue;
        }
        if ((f.flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *reinterpret_cast<const uint32_t*>(base + f.quantifier_offset) != f.id)
            continue;
        auto* child = *reinterpret_cast<ProtobufCMessage* const*>(base + f.offset);
        if (child) fn(child);
    }
}

bool is_catalog_relation(const PgQuery__RangeVar* rv) {
    std::string_view schema = rv->schemaname ? rv->schemaname : "";
    std::string_view rel = rv->relname ? rv->relname : "";
    if (schema == "pg_catalog" || schema == "information_schema") return true;
    return schema.empty() && rel.substr(0, 3) == "pg_";
}

void note_dml_target(const PgQuery__RangeVar* rv, TreeFacts* facts) {
    ++facts->dml_count;
    if (rv) facts->dml_targets.push_back(range_var_name(rv));
}

void visit(const ProtobufCMessage* msg, TreeFacts* facts, int depth) {
    // Parse trees are as deep as the SQL nests; PostgreSQL itself stops far below this.
    if (depth > 1000) return;
    const ProtobufCMessageDescriptor* d = msg->descriptor;
    if (d == &pg_query__func_call__descriptor) {
        auto* fc = reinterpret_cast<const PgQuery__FuncCall*>(msg);
        facts->functions.push_back(join_names(fc->funcname, fc->n_funcname));
    } else if (d == &pg_query__range_var__descriptor) {
        auto* rv = reinterpret_cast<const PgQuery__RangeVar*>(msg);
        facts->relations.push_back(range_var_name(rv));
        if (is_catalog_relation(rv)) facts->catalog = true;
    } else if (d == &pg_query__locking_clause__descriptor) {
        facts->locking = true;
    } else if (d == &pg_query__select_stmt__descriptor) {
        if (reinterpret_cast<const PgQuery__SelectStmt*>(msg)->into_clause) facts->into = true;
    } else if (d == &pg_query__common_table_expr__descriptor) {
        auto* cte = reinterpret_cast<const PgQuery__CommonTableExpr*>(msg);
        if (cte->ctename) facts->cte_names.emplace_back(cte->ctename);
    } else if (d == &pg_query__insert_stmt__descriptor) {
        note_dml_target(reinterpret_cast<const PgQuery__InsertStmt*>(msg)->relation, facts);
    } else if (d == &pg_query__update_stmt__descriptor) {
        note_dml_target(reinterpret_cast<const PgQuery__UpdateStmt*>(msg)->relation, facts);
    } else if (d == &pg_query__delete_stmt__descriptor) {
        note_dml_target(reinterpret_cast<const PgQuery__DeleteStmt*>(msg)->relation, facts);
    } else if (d == &pg_query__merge_stmt__descriptor) {
        note_dml_target(reinterpret_cast<const PgQuery__MergeStmt*>(msg)->relation, facts);
    }
    for_each_child(msg, [&](const ProtobufCMessage* child) { visit(child, facts, depth + 1); });
}

}  // namespace

void collect_facts(const ProtobufCMessage* root, TreeFacts* facts) {
    if (!root) return;
    visit(root, facts, 0);
    // A CTE name used in FROM is a RangeVar too, but it is no table: drop unqualified matches.
    if (!facts->cte_names.empty()) {
        auto& rels = facts->relations;
        rels.erase(std::remove_if(rels.begin(), rels.end(),
                                  [&](const std::string& r) {
                                      return std::find(facts->cte_names.begin(), facts->cte_names.end(), r) !=
                                             facts->cte_names.end();
                                  }),
                   rels.end());
    }
}

std::string range_var_name(const PgQuery__RangeVar* rv) {
    std::string out;
    if (rv->schemaname && *rv->schemaname) {
        out = rv->schemaname;
        out += '.';
    }
    if (rv->relname) out += rv->relname;
    return out;
}

std::string join_names(PgQuery__Node* const* items, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) {
        const PgQuery__Node* item = items[i];
        if (!item || item->node_case != PG_QUERY__NODE__NODE_STRING || !item->string) continue;
        if (!out.empty()) out += '.';
        out += item->string->sval;
    }
    return out;
}

std::string const_text(const PgQuery__Node* node) {
    if (!node) return {};
    if (node->node_case == PG_QUERY__NODE__NODE_TYPE_CAST && node->type_cast)
        return const_text(node->type_cast->arg);
    // Option arguments (EXPLAIN (ANALYZE false), ...) arrive as bare String / Boolean / Integer nodes.
    std::string bare;
    if (node->node_case == PG_QUERY__NODE__NODE_STRING && node->string) bare = node->string->sval;
    else if (node->node_case == PG_QUERY__NODE__NODE_BOOLEAN && node->boolean) bare = node->boolean->boolval ? "true" : "false";
    else if (node->node_case == PG_QUERY__NODE__NODE_INTEGER && node->integer) bare = std::to_string(node->integer->ival);
    if (!bare.empty()) {
        for (char& ch : bare) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        return bare;
    }
    if (node->node_case != PG_QUERY__NODE__NODE_A_CONST || !node->a_const) return {};
    const PgQuery__AConst* c = node->a_const;
    std::string out;
    switch (c->val_case) {
    case PG_QUERY__A__CONST__VAL_IVAL: out = std::to_string(c->ival ? c->ival->ival : 0); break;
    case PG_QUERY__A__CONST__VAL_FVAL: out = c->fval ? c->fval->fval : ""; break;
    case PG_QUERY__A__CONST__VAL_BOOLVAL: out = (c->boolval && c->boolval->boolval) ? "true" : "false"; break;
    case PG_QUERY__A__CONST__VAL_SVAL: out = c->sval ? c->sval->sval : ""; break;
    default: break;
    }
    for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return out;
}

}  // namespace splitpool::parser
