// Dispatcher, failed transactions and errors inside a batch: where a failed transaction's
// statements go, how a batch that ends the failure is sent, and undoing in the session model what
// PostgreSQL skipped after an error.
#include <string>
#include <vector>

#include "daemon/dispatcher.hpp"
#include "daemon/proto/frame.hpp"
#include "daemon/proto/writer.hpp"

namespace splitpool::daemon {

using parser::Classification;
using parser::Kind;

namespace {

// An unnamed Parse of ROLLBACK: what a healthy node of a failed transaction gets for its COMMIT.
// (PostgreSQL answers that COMMIT with the tag ROLLBACK, so the client sees the same replies.)
std::string rollback_parse() {
    std::string out;
    proto::Writer w(out);
    w.begin('P').cstr("").cstr("ROLLBACK").i16(0);
    w.finish();
    return out;
}

}  // namespace

// Inside a failed transaction every statement goes to the failed node, which answers 25P02 as
// PostgreSQL would; COMMIT and ROLLBACK still end the transaction on every node (as ROLLBACK), and
// ROLLBACK TO a savepoint recovers it on every node.
RouteDecision Dispatcher::on_failed_node(RouteDecision d, const Classification& cls, const std::vector<NodeView>& nodes) const {
    int failed = failed_node(nodes);
    if (failed < 0) return d;
    bool recovers = cls.kind == Kind::RollbackToSavepoint && d.target == Target::Transaction;
    if (recovers) {
        d.nodes.set(size_t(failed));
        d.node = failed;
        return d;
    }
    if (!d.ends_transaction) d.nodes.reset();
    d.nodes.set(size_t(failed));
    d.node = failed;
    d.target = d.ends_transaction ? Target::Transaction : Target::Primary;
    d.load_balanced = false;
    d.counts_as_write = false;
    d.prepared = nullptr;
    return d;
}

// Inside a failed transaction the batch goes to the failed node; when that node lacks a statement
// the batch binds, creating it there would fail too: PostgreSQL's own answer is given instead (the
// first message of the batch fails with 25P02, the rest is skipped up to the Sync).
bool Dispatcher::answer_aborted_batch(int main, const std::vector<NodeView>& nodes, Plan& plan) {
    if (failed_node(nodes) != main) return false;
    bool missing = false;
    for (const Run& r : runs_) {
        if (r.decision.ends_transaction) return false;
        missing = missing || (r.statement && r.parse_msg < 0 && !r.statement->nodes.test(size_t(main)));
    }
    if (!missing) return false;
    proto::put_error(plan.client_reply, "ERROR", "25P02",
                     "current transaction is aborted, commands ignored until end of transaction block");
    proto::put_ready_for_query(plan.client_reply, 'E');
    for (const auto& [name, index] : parsed_) model_.statements.erase(name);  // those Parses failed too
    batch_.clear();
    batch_msgs_.clear();
    runs_.clear();
    parsed_.clear();
    return true;
}

// DISCARD ALL cannot run in a transaction block, nor after another statement of its batch's
// implicit transaction (PostgreSQL 15: "cannot be executed within a pipeline"); SAVEPOINT and its
// RELEASE and ROLLBACK TO only run in a transaction block.
bool Dispatcher::refused_in_batch(const Classification& cls, bool pipelined) const {
    switch (cls.kind) {
    case Kind::DiscardAll: return pipelined || model_.in_transaction;
    case Kind::Savepoint: case Kind::ReleaseSavepoint: case Kind::RollbackToSavepoint: return !model_.in_transaction;
    default: return false;
    }
}

// Before a run is noted: what an error before it would have to undo (see note_error).
void Dispatcher::keep_undo(const Run& r, const RouteDecision& d, int main) {
    if (r.first_execute < 0) return;  // bound, never executed: it changes nothing
    if (forgets_statements(*r.cls) && forgetting_execute_ < 0) {
        forgetting_execute_ = r.first_execute;
        before_forgetting_ = model_.statements;
        forgetting_elsewhere_ = d.nodes;  // the nodes it fans out to run it, error or not
        forgetting_elsewhere_.reset(size_t(main));
    }
    if (r.cls->kind == Kind::Prepare && !model_.statements.count(r.cls->name))
        created_.push_back({0, r.first_execute, r.cls->name});
}

// An ErrorResponse reached the client after `executed` Executes of the batch completed: PostgreSQL
// skipped the rest, so the statements it would have created (a later SQL PREPARE, a Parse after
// the failing Execute) do not exist, and those a later DEALLOCATE would have dropped still do.
// -1: not a batch's reply.
void Dispatcher::note_error(int executed) {
    daemon::note_error(model_);
    if (executed < 0 || size_t(executed) >= executes_.size()) return;
    size_t failing = executes_[size_t(executed)];
    if (forgetting_execute_ >= executed && forgetting_execute_ >= 0) {
        model_.statements = std::move(before_forgetting_);
        for (auto& [name, st] : model_.statements) st.nodes &= ~forgetting_elsewhere_;
    }
    forgetting_execute_ = -1;
    for (const Created& c : created_)
        if (c.execute >= 0 ? c.execute >= executed : c.parse > failing) model_.statements.erase(c.name);
    created_.clear();
}

// A COMMIT (not AND CHAIN) parsed as the unnamed statement in this batch: a node other than the
// failed one can be sent ROLLBACK in its place (a named one would stay ROLLBACK there for later Binds).
bool Dispatcher::rolls_back_commit(const Run& r) const {
    return r.cls->kind == Kind::Commit && !r.cls->chain && r.parse_msg >= 0 && r.name.empty();
}

// The batch as the main node gets it: whole, but in a failed transaction that failed elsewhere an
// opening COMMIT becomes ROLLBACK (the COMMIT itself would commit there).
std::string Dispatcher::main_batch(int main, const std::vector<NodeView>& nodes) {
    const Run* opening = opening_run();
    int failed = failed_node(nodes);
    if (failed < 0 || failed == main || !opening || !rolls_back_commit(*opening)) return batch_;
    commit_sent_as_rollback_ = true;
    size_t at = batch_msgs_[size_t(opening->parse_msg)].second;
    return batch_.substr(0, at) + rollback_parse() + batch_.substr(at + message_at(size_t(opening->parse_msg)).size());
}

// Where the batch splits when its opening run ends the failed transaction of `main` (the end of
// that run's messages), or 0: no failure there, or nothing follows, or the run lacks its own
// statement there (created first, as a Parse of a transaction's end may be even when it failed).
size_t Dispatcher::recovery_split(int main, const std::vector<NodeView>& nodes) const {
    const Run* opening = opening_run();
    if (failed_node(nodes) != main || !opening) return 0;
    // (not ROLLBACK TO: it may fail, and the batch would then go on after splitpool's Sync)
    if (opening->cls->kind != Kind::Rollback && opening->cls->kind != Kind::Commit) return 0;
    if (opening->parse_msg < 0 && !opening->statement->nodes.test(size_t(main))) return 0;
    for (size_t i = opening->bind + 1; i < batch_msgs_.size(); ++i) {
        char type = batch_msgs_[i].first;
        if (type == 'S') return 0;
        if (type == 'P' || type == 'B') return batch_msgs_[i].second;
    }
    return 0;
}

}  // namespace splitpool::daemon
