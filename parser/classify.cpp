// Statement classification from libpg_query's protobuf parse tree (pgpool's send_to_where + is_select_query).
#include "parser/classify.hpp"

#include <pg_query.h>

#include <algorithm>
#include <cctype>

#include "parser/tree_walk.hpp"

namespace splitpool::parser {

namespace {

void classify_node(const PgQuery__Node* node, Classification* c);

void set_primary_write(Classification* c, Kind kind) {
    c->kind = kind;
    c->scope = Scope::Primary;
    c->writes = true;
    c->load_balanceable = false;
}

void set_scope(Classification* c, Kind kind, Scope scope) {
    c->kind = kind;
    c->scope = scope;
    c->writes = false;
    c->load_balanceable = false;
}

void set_read(Classification* c, Kind kind) {
    c->kind = kind;
    c->scope = Scope::Either;
    c->writes = false;
    c->load_balanceable = true;
}

void append(std::vector<std::string>* to, const std::vector<std::string>& from) {
    to->insert(to->end(), from.begin(), from.end());
}

void adopt_facts(TreeFacts&& facts, Classification* c) {
    append(&c->functions, facts.functions);
    append(&c->relations, facts.relations);
    c->system_catalog = c->system_catalog || facts.catalog;
}

// A query that only reads (SELECT, VALUES, TABLE, or COPY's inner query), judged by the walk.
void classify_query_facts(const TreeFacts& facts, Classification* c) {
    if (facts.into) {
        c->select_into = true;
        set_primary_write(c, Kind::Write);
    } else if (facts.dml_count > 0) {
        c->modifying_cte = true;
        set_primary_write(c, Kind::Write);
        append(&c->written_relations, facts.dml_targets);
    } else if (facts.locking) {
        c->for_update = true;
        set_primary_write(c, Kind::Write);
    } else {
        set_read(c, Kind::Read);
    }
}

void note_created(const PgQuery__RangeVar* rv, Classification* c) {
    if (!rv) return;
    std::string name = range_var_name(rv);
    std::string_view persistence = rv->relpersistence ? rv->relpersistence : "";
    if (persistence == "t") c->temp_tables_created.push_back(name);
    if (persistence == "u") c->unlogged_created.push_back(name);
    c->written_relations.push_back(std::move(name));
}

void classify_select(const PgQuery__SelectStmt* s, TreeFacts&& facts, Classification* c) {
    classify_query_facts(facts, c);
    if (s->into_clause) note_created(s->into_clause->rel, c);
    adopt_facts(std::move(facts), c);
}

Isolation parse_isolation(std::string_view v) {
    if (v == "serializable") return Isolation::Serializable;
    if (v == "repeatable read") return Isolation::RepeatableRead;
    if (v == "read committed") return Isolation::ReadCommitted;
    if (v == "read uncommitted") return Isolation::ReadUncommitted;
    return Isolation::Default;
}

// BEGIN / START TRANSACTION / SET TRANSACTION options: a list of DefElem.
TxnOptions parse_txn_options(PgQuery__Node* const* opts, size_t n) {
    TxnOptions t;
    for (size_t i = 0; i < n; ++i) {
        const PgQuery__Node* o = opts[i];
        if (!o || o->node_case != PG_QUERY__NODE__NODE_DEF_ELEM || !o->def_elem) continue;
        std::string_view name = o->def_elem->defname ? o->def_elem->defname : "";
        std::string value = const_text(o->def_elem->arg);
        if (name == "transaction_isolation") t.isolation = parse_isolation(value);
        else if (name == "transaction_read_only") t.access = (value == "1" || value == "true") ? Access::ReadOnly : Access::ReadWrite;
        else if (name == "transaction_deferrable") t.deferrable = (value == "1" || value == "true");
    }
    return t;
}

void classify_transaction(const PgQuery__TransactionStmt* t, Classification* c) {
    c->chain = t->chain;
    switch (t->kind) {
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
        set_scope(c, Kind::Begin, Scope::All);
        c->txn = parse_txn_options(t->options, t->n_options);
        return;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT: set_scope(c, Kind::Commit, Scope::All); return;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK: set_scope(c, Kind::Rollback, Scope::All); return;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_SAVEPOINT: set_scope(c, Kind::Savepoint, Scope::All); break;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_RELEASE: set_scope(c, Kind::ReleaseSavepoint, Scope::All); break;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_TO:
        set_scope(c, Kind::RollbackToSavepoint, Scope::All);
        break;
    default:  // PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED
        set_scope(c, Kind::TwoPhase, Scope::Primary);
        c->name = t->gid ? t->gid : "";
        return;
    }
    c->name = t->savepoint_name ? t->savepoint_name : "";
}

// pgpool's list for `SET transaction_read_only = off/f/false/0`; PostgreSQL's parse_bool prefixes too.
bool is_false_text(std::string_view v) {
    return v == "off" || v == "of" || v == "0" || v == "n" || v == "no" ||
           (!v.empty() && std::string_view("false").substr(0, v.size()) == v);
}

void classify_set_value(const PgQuery__VariableSetStmt* s, Classification* c) {
    for (size_t i = 0; i < s->n_args; ++i) {
        if (i) c->set.value += ", ";
        c->set.value += const_text(s->args[i]);
    }
    const std::string& n = c->set.name;
    const std::string& v = c->set.value;
    bool read_write = n == "transaction_read_only" && is_false_text(v);
    bool serializable = (n == "transaction_isolation" || n == "default_transaction_isolation") && v == "serializable";
    // Standbys cannot run read-write or serializable transactions: only the primary may take these.
    if (read_write || serializable) c->scope = Scope::Primary;
    if (n == "transaction_isolation") c->txn.isolation = parse_isolation(v);
    if (n == "transaction_read_only") c->txn.access = is_false_text(v) ? Access::ReadWrite : Access::ReadOnly;
}

void classify_variable_set(const PgQuery__VariableSetStmt* s, Classification* c) {
    std::string name = s->name ? s->name : "";
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    c->set.is_local = s->is_local;
    if (s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET || s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL) {
        set_scope(c, Kind::Reset, Scope::All);
        c->set.reset_all = s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL;
        c->set.name = std::move(name);
        return;
    }
    set_scope(c, Kind::Set, Scope::All);
    if (s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI) {
        // SET TRANSACTION ... / SET SESSION CHARACTERISTICS AS TRANSACTION ...
        c->set.transaction = name == "transaction";
        c->set.session_characteristics = name == "session characteristics";
        c->txn = parse_txn_options(s->args, s->n_args);
        if (c->txn.isolation == Isolation::Serializable || c->txn.access == Access::ReadWrite)
            c->scope = Scope::Primary;
        return;
    }
    c->set.name = std::move(name);
    if (s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE) classify_set_value(s, c);
}

bool is_splitpool_name(std::string_view name) { return name.substr(0, 10) == "splitpool."; }

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return out;
}

// `SET [SESSION|LOCAL] splitpool.x {=|TO} word [;]`, which the grammar refuses when the word is a
// reserved keyword such as PRIMARY. Returns false for anything else.
bool parse_splitpool_set(std::string_view sql, Classification* c) {
    std::vector<std::string> words;
    std::string cur;
    for (size_t k = 0; k < sql.size(); ++k) {
        char ch = sql[k];
        bool word = std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '\'';
        if (word) cur += ch;
        if (!word || k + 1 == sql.size()) {
            if (!cur.empty()) words.push_back(lower(cur));
            cur.clear();
        }
        if (ch == '=') words.emplace_back("to");
        else if (!word && ch != ';' && !std::isspace(static_cast<unsigned char>(ch))) return false;
    }
    size_t i = 0;
    if (words.size() < 4 || words[i++] != "set") return false;
    if (words[i] == "session" || words[i] == "local") c->set.is_local = words[i++] == "local";
    if (words.size() != i + 3 || !is_splitpool_name(words[i]) || words[i + 1] != "to") return false;
    set_scope(c, Kind::Set, Scope::All);
    c->set.name = words[i];
    std::string value = words[i + 2];
    if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'') value = value.substr(1, value.size() - 2);
    c->set.value = value;
    c->splitpool_setting = true;
    return true;
}

void dedupe(std::vector<std::string>* v) {
    if (v->size() < 2) return;
    std::vector<std::string> out;
    for (auto& s : *v)
        if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(std::move(s));
    *v = std::move(out);
}

void classify_copy(const PgQuery__CopyStmt* s, TreeFacts&& facts, Classification* c) {
    if (s->is_from) {
        set_primary_write(c, Kind::CopyFrom);
        if (s->relation) c->written_relations.push_back(range_var_name(s->relation));
    } else {
        classify_query_facts(facts, c);
        c->copy_to_client = !s->is_program && (!s->filename || !*s->filename);
        if (c->kind == Kind::Read && !c->copy_to_client) set_scope(c, Kind::Read, Scope::Primary);
        c->kind = Kind::CopyTo;
    }
    adopt_facts(std::move(facts), c);
}

void classify_lock(const PgQuery__LockStmt* s, TreeFacts&& facts, Classification* c) {
    c->lock_mode = static_cast<LockMode>(std::clamp(s->mode, 0, 8));
    if (c->lock_mode >= LockMode::RowExclusive) {
        set_primary_write(c, Kind::Lock);
        append(&c->written_relations, facts.relations);
    } else {
        set_scope(c, Kind::Lock, Scope::All);  // pgpool's BOTH: standbys accept the weak modes
    }
    adopt_facts(std::move(facts), c);
}

bool explain_has_analyze(const PgQuery__ExplainStmt* s) {
    for (size_t i = 0; i < s->n_options; ++i) {
        const PgQuery__Node* o = s->options[i];
        if (!o || o->node_case != PG_QUERY__NODE__NODE_DEF_ELEM || !o->def_elem) continue;
        if (std::string_view(o->def_elem->defname ? o->def_elem->defname : "") != "analyze") continue;
        std::string v = const_text(o->def_elem->arg);
        return v.empty() || !is_false_text(v);
    }
    return false;
}

void classify_explain(const PgQuery__ExplainStmt* s, Classification* c) {
    classify_node(s->query, c);
    c->inner = c->kind;
    c->kind = Kind::Explain;
    c->explain_analyze = explain_has_analyze(s);
    if (c->load_balanceable) return;  // EXPLAIN [ANALYZE] of a read: balanced (beyond pgpool)
    c->scope = Scope::Primary;
    if (c->explain_analyze) return;
    // Without ANALYZE the inner statement only gets planned: nothing is written.
    c->writes = false;
    c->written_relations.clear();
    c->temp_tables_created.clear();
    c->unlogged_created.clear();
    c->tables_dropped.clear();
}

// Statements that wrap another one: classified by the inner statement.
bool classify_wrapper(const PgQuery__Node* node, Classification* c) {
    switch (node->node_case) {
    case PG_QUERY__NODE__NODE_PREPARE_STMT:
        classify_node(node->prepare_stmt->query, c);
        c->inner = c->kind;
        c->kind = Kind::Prepare;
        c->name = node->prepare_stmt->name ? node->prepare_stmt->name : "";
        return true;
    case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
        classify_node(node->declare_cursor_stmt->query, c);
        c->inner = c->kind;
        c->kind = Kind::DeclareCursor;
        c->scope = Scope::Primary;  // FETCH must find the cursor: keep it where pgpool keeps it
        c->load_balanceable = false;
        c->name = node->declare_cursor_stmt->portalname ? node->declare_cursor_stmt->portalname : "";
        return true;
    case PG_QUERY__NODE__NODE_EXPLAIN_STMT: classify_explain(node->explain_stmt, c); return true;
    default: return false;
    }
}

// Statements that need nothing from a walk of their subtree.
bool classify_simple(const PgQuery__Node* node, Classification* c) {
    auto str = [](const char* s) { return std::string(s ? s : ""); };
    switch (node->node_case) {
    case PG_QUERY__NODE__NODE_TRANSACTION_STMT: classify_transaction(node->transaction_stmt, c); return true;
    case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT: classify_variable_set(node->variable_set_stmt, c); return true;
    case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
        set_read(c, Kind::Show);
        c->name = str(node->variable_show_stmt->name);
        return true;
    case PG_QUERY__NODE__NODE_DISCARD_STMT:
        set_scope(c, node->discard_stmt->target == PG_QUERY__DISCARD_MODE__DISCARD_ALL ? Kind::DiscardAll : Kind::Discard,
                  Scope::All);
        return true;
    case PG_QUERY__NODE__NODE_EXECUTE_STMT:
        set_scope(c, Kind::Execute, Scope::Primary);  // provisional: the router follows the PREPARE
        c->name = str(node->execute_stmt->name);
        return true;
    case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
        c->name = str(node->deallocate_stmt->name);
        if (c->name.empty()) set_scope(c, Kind::DeallocateAll, Scope::All);
        else set_scope(c, Kind::Deallocate, Scope::Primary);
        return true;
    case PG_QUERY__NODE__NODE_LISTEN_STMT:
        set_scope(c, Kind::Listen, Scope::Primary);
        c->name = str(node->listen_stmt->conditionname);
        return true;
    case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
        set_scope(c, Kind::Unlisten, Scope::Primary);
        c->name = str(node->unlisten_stmt->conditionname);
        return true;
    case PG_QUERY__NODE__NODE_NOTIFY_STMT:
        set_scope(c, Kind::Notify, Scope::Primary);
        c->name = str(node->notify_stmt->conditionname);
        return true;
    case PG_QUERY__NODE__NODE_FETCH_STMT:
        set_scope(c, Kind::Fetch, Scope::Primary);
        c->name = str(node->fetch_stmt->portalname);
        c->is_move = node->fetch_stmt->ismove;
        return true;
    case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
        set_scope(c, Kind::ClosePortal, Scope::Primary);
        c->name = str(node->close_portal_stmt->portalname);
        return true;
    default: return false;
    }
}

void classify_drop(const PgQuery__DropStmt* s, Classification* c) {
    if (s->remove_type != PG_QUERY__OBJECT_TYPE__OBJECT_TABLE) return;
    for (size_t i = 0; i < s->n_objects; ++i) {
        const PgQuery__Node* o = s->objects[i];
        if (!o || o->node_case != PG_QUERY__NODE__NODE_LIST || !o->list) continue;
        std::string name = join_names(o->list->items, o->list->n_items);
        c->tables_dropped.push_back(name);
        c->written_relations.push_back(std::move(name));
    }
}

// Everything that is neither a read nor session/transaction control: primary, and a write.
void classify_utility(const PgQuery__Node* node, TreeFacts&& facts, Classification* c) {
    switch (node->node_case) {
    case PG_QUERY__NODE__NODE_CALL_STMT:
    case PG_QUERY__NODE__NODE_DO_STMT: set_primary_write(c, Kind::Write); break;
    default: set_primary_write(c, Kind::Utility); break;
    }
    switch (node->node_case) {
    case PG_QUERY__NODE__NODE_CREATE_STMT: note_created(node->create_stmt->relation, c); break;
    case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
        c->select_into = true;
        if (node->create_table_as_stmt->into) note_created(node->create_table_as_stmt->into->rel, c);
        break;
    case PG_QUERY__NODE__NODE_DROP_STMT: classify_drop(node->drop_stmt, c); break;
    default: break;
    }
    append(&c->written_relations, facts.relations);
    adopt_facts(std::move(facts), c);
}

void classify_node(const PgQuery__Node* node, Classification* c) {
    if (!node) {
        set_read(c, Kind::Empty);
        return;
    }
    if (classify_simple(node, c) || classify_wrapper(node, c)) return;
    TreeFacts facts;
    collect_facts(&node->base, &facts);
    switch (node->node_case) {
    case PG_QUERY__NODE__NODE_SELECT_STMT: classify_select(node->select_stmt, std::move(facts), c); return;
    case PG_QUERY__NODE__NODE_INSERT_STMT:
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
    case PG_QUERY__NODE__NODE_DELETE_STMT:
    case PG_QUERY__NODE__NODE_MERGE_STMT:
        set_primary_write(c, Kind::Write);
        c->modifying_cte = facts.dml_count > 1;
        append(&c->written_relations, facts.dml_targets);
        adopt_facts(std::move(facts), c);
        return;
    case PG_QUERY__NODE__NODE_COPY_STMT: classify_copy(node->copy_stmt, std::move(facts), c); return;
    case PG_QUERY__NODE__NODE_LOCK_STMT: classify_lock(node->lock_stmt, std::move(facts), c); return;
    default: classify_utility(node, std::move(facts), c); return;
    }
}

bool is_txn_control(Kind k) {
    return k == Kind::Begin || k == Kind::Commit || k == Kind::Rollback || k == Kind::Savepoint ||
           k == Kind::RollbackToSavepoint || k == Kind::ReleaseSavepoint || k == Kind::TwoPhase;
}

// Flags that classify() derives from the text and the collected lists, for one statement or inner one.
void finish_flags(Classification* c) {
    if ((c->kind == Kind::Set || c->kind == Kind::Reset) && is_splitpool_name(c->set.name)) c->splitpool_setting = true;
    if (c->kind == Kind::Show && is_splitpool_name(lower(c->name))) c->splitpool_setting = true;
    for (auto* v : {&c->functions, &c->relations, &c->written_relations, &c->temp_tables_created})
        dedupe(v);
    for (const std::string& f : c->functions)
        c->calls_set_config = c->calls_set_config || f == "set_config" || f == "pg_catalog.set_config";
}

// Inner statements the session model must see: a SET in "SET search_path = s; SELECT ..." changes
// the session on the node that runs the string, and the other nodes need it replayed.
bool changes_session_state(const Classification& c) {
    switch (c.kind) {
    case Kind::Set: case Kind::Reset: case Kind::Discard: case Kind::DiscardAll:
    case Kind::Prepare: case Kind::Deallocate: case Kind::DeallocateAll: return true;
    default: return c.calls_set_config;
    }
}

void classify_multi(const PgQuery__ParseResult* tree, std::string_view sql, Classification* c) {
    for (size_t i = 0; i < tree->n_stmts; ++i) {
        Classification one;
        const PgQuery__RawStmt* raw = tree->stmts[i];
        classify_node(raw ? raw->stmt : nullptr, &one);
        finish_flags(&one);
        c->writes = c->writes || one.writes;
        c->contains_txn_control = c->contains_txn_control || is_txn_control(one.kind);
        c->system_catalog = c->system_catalog || one.system_catalog;
        append(&c->functions, one.functions);
        append(&c->relations, one.relations);
        append(&c->written_relations, one.written_relations);
        append(&c->temp_tables_created, one.temp_tables_created);
        append(&c->tables_dropped, one.tables_dropped);
        append(&c->unlogged_created, one.unlogged_created);
        if (!raw || !changes_session_state(one)) continue;
        size_t at = std::min(size_t(std::max(raw->stmt_location, 0)), sql.size());
        std::string_view text = sql.substr(at, raw->stmt_len > 0 ? size_t(raw->stmt_len) : sql.npos);  // 0: the rest
        text.remove_prefix(std::min(text.size(), text.find_first_not_of(" \t\n\r\f\v")));
        c->session_statements.push_back({std::string(text), std::make_shared<const Classification>(std::move(one))});
    }
    c->kind = Kind::MultiStatement;
    c->scope = Scope::Primary;
    c->multi_statement = true;
    c->load_balanceable = false;
}

bool is_space(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

bool ieq(char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
}

bool is_ident_char(char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '$';
}

}  // namespace

Classification classify(std::string_view sql) {
    Classification c;
    c.leading_comment = starts_with_comment(sql);
    c.primary_hint = has_primary_hint(sql);
    std::string text(sql);  // libpg_query wants a NUL-terminated string
    PgQueryProtobufParseResult parsed = pg_query_parse_protobuf(text.c_str());
    PgQuery__ParseResult* tree = nullptr;
    if (!parsed.error)
        tree = pg_query__parse_result__unpack(nullptr, parsed.parse_tree.len,
                                              reinterpret_cast<const uint8_t*>(parsed.parse_tree.data));
    if (!tree) {
        // pgpool treats it as a write (dummy DELETE): the primary answers with PostgreSQL's own error.
        set_primary_write(&c, Kind::Unparseable);
        c.error = parsed.error && parsed.error->message ? parsed.error->message : "cannot decode parse tree";
    } else if (tree->n_stmts == 0) {
        set_read(&c, Kind::Empty);
    } else if (tree->n_stmts == 1) {
        classify_node(tree->stmts[0] ? tree->stmts[0]->stmt : nullptr, &c);
    } else {
        classify_multi(tree, sql, &c);
    }
    if (tree) pg_query__parse_result__free_unpacked(tree, nullptr);
    pg_query_free_protobuf_parse_result(parsed);
    if (c.kind == Kind::Unparseable && parse_splitpool_set(sql, &c)) c.error.clear();
    finish_flags(&c);
    return c;
}

bool starts_with_comment(std::string_view sql) {
    size_t i = 0;
    while (i < sql.size() && is_space(sql[i])) ++i;
    std::string_view rest = sql.substr(i);
    return rest.substr(0, 2) == "--" || rest.substr(0, 2) == "/*";
}

bool has_primary_hint(std::string_view sql) {
    constexpr std::string_view kWord = "primary";
    for (size_t at = sql.find("/*+"); at != std::string_view::npos; at = sql.find("/*+", at + 3)) {
        size_t end = sql.find("*/", at + 3);
        std::string_view body = sql.substr(at + 3, end == std::string_view::npos ? std::string_view::npos : end - at - 3);
        for (size_t i = 0; i + kWord.size() <= body.size(); ++i) {
            if (i > 0 && is_ident_char(body[i - 1])) continue;
            if (!std::equal(kWord.begin(), kWord.end(), body.begin() + static_cast<long>(i), ieq)) continue;
            size_t after = i + kWord.size();
            if (after == body.size() || !is_ident_char(body[after])) return true;
        }
    }
    return false;
}

std::string_view kind_name(Kind kind) {
    static constexpr std::string_view kNames[] = {
        "empty", "read", "write", "utility", "begin", "commit", "rollback", "savepoint",
        "rollback to savepoint", "release savepoint", "two-phase", "set", "reset", "discard",
        "discard all", "prepare", "execute", "deallocate", "deallocate all", "listen", "unlisten",
        "notify", "declare cursor", "fetch", "close", "copy from", "copy to", "lock", "explain",
        "show", "multi-statement", "unparseable",
    };
    auto i = static_cast<size_t>(kind);
    return i < std::size(kNames) ? kNames[i] : "?";
}

}  // namespace splitpool::parser
