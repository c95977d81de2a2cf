// Table-driven tests of the dispatcher and the session model: sequences of client messages (simple
// and extended protocol, named and unnamed statements and portals, pipelined batches, errors) ->
// the sends each node gets, and the session state after them.
#include <doctest/doctest.h>

#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "daemon/catalog_cache.hpp"
#include "daemon/config.hpp"
#include "daemon/dispatcher.hpp"
#include "daemon/proto/frame.hpp"
#include "daemon/proto/writer.hpp"
#include "parser/classify_cache.hpp"
#include "shm/segment.hpp"
#include "shm/status_table.hpp"

using namespace splitpool;
using daemon::Delivery;
using daemon::NodeView;
using daemon::Plan;

namespace {

std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t i = 0; i <= s.size(); ++i)
        if (i == s.size() || s[i] == sep) {
            out.emplace_back(s.substr(start, i - start));
            start = i + 1;
        }
    return out;
}

// Three nodes: 0 primary, 1 and 2 standbys; weights 0:1:0 so a session's reads go to node 1.
struct Harness {
    std::string name = "splitpool.dispatch." + std::to_string(getpid());
    std::unique_ptr<shm::StatusTable> table;
    daemon::Config config, session_config;
    daemon::RoutingPolicy policy;
    parser::ClassificationCache cache;
    daemon::CatalogCache catalog;
    daemon::Mt19937Random rng{std::random_device{}()};
    std::unique_ptr<daemon::Dispatcher> dispatcher;
    std::vector<NodeView> nodes{3};
    std::map<std::string, std::string> parsed;  // statement name -> text, as the nodes saw it

    explicit Harness(const std::string& tokens) {
        std::string err;
        table = shm::StatusTable::create(name, 2, &err);
        REQUIRE(table);
        table->set_num_nodes(3);
        double weights[3] = {0, 1, 0};
        for (int i = 0; i < 3; ++i) {
            table->set_node_status(i, shm::NodeStatus::Up);
            table->node(i).role = uint8_t(i == 0 ? shm::NodeRole::Primary : shm::NodeRole::Standby);
            table->node(i).weight = weights[i];
            config.backends.push_back(daemon::BackendConfig{"127.0.0.1", 5432 + i, weights[i]});
        }
        table->header().primary_node = 0;
        for (const std::string& t : split(tokens, '+')) {
            if (t == "stmt") config.statement_level_load_balance = true;
            else if (t == "off") config.disable_load_balance_on_write = "off";
        }
        session_config = config;
        REQUIRE(daemon::routing_policy_for(config, &policy, &err));
        dispatcher = std::make_unique<daemon::Dispatcher>(
            daemon::DispatchContext{config, session_config, policy, cache, catalog, *table, nullptr, rng}, "db", "u", "app");
    }
    ~Harness() { shm::Segment::remove(name); }

    // The status each node would report after running `bytes` (enough for BEGIN/COMMIT/ROLLBACK).
    void simulate(const daemon::Send& s) {
        NodeView& n = nodes[size_t(s.node)];
        n.connected = true;
        std::string text;
        for (size_t at = 0; at < s.bytes.size();) {
            proto::Frame f;
            REQUIRE(proto::parse_frame(s.bytes.data() + at, s.bytes.size() - at, f) == proto::FrameStatus::Ok);
            at += f.size();
            proto::Reader r(f.body, f.body_size());
            if (f.type == 'Q') text = r.cstr();
            if (f.type == 'P') {
                std::string stmt(r.cstr());
                parsed[stmt] = r.cstr();
            }
            if (f.type == 'B') {
                r.cstr();
                text = parsed[std::string(r.cstr())];
            }
            if (f.type != 'Q' && f.type != 'E') continue;
            parser::Classification c = parser::classify(text);
            if (c.kind == parser::Kind::Begin && n.tx_status == 'I') n.tx_status = 'T';
            if (c.kind == parser::Kind::Commit || c.kind == parser::Kind::Rollback) n.tx_status = 'I';
            if (c.kind == parser::Kind::RollbackToSavepoint && n.tx_status == 'E') n.tx_status = 'T';
        }
    }

    static std::string render_send(const daemon::Send& s) {
        std::string out = std::to_string(s.node) + (s.delivery == Delivery::Forward ? "F" : "s");
        if (s.retryable) out += "R";
        if (s.swallow_ready) out += "z";  // its ReadyForQuery is not the client's
        out += "[";
        for (size_t at = 0; at < s.bytes.size();) {
            proto::Frame f;
            if (proto::parse_frame(s.bytes.data() + at, s.bytes.size() - at, f) != proto::FrameStatus::Ok) break;
            at += f.size();
            proto::Reader r(f.body, f.body_size());
            if (at > f.size()) out += " ";
            out += f.type;
            if (f.type == 'Q') out += "(" + std::string(r.cstr()) + ")";
            if (f.type == 'P') {  // its text only for ROLLBACK, which may stand in for a COMMIT
                std::string name(r.cstr());
                std::string_view text = r.cstr();
                out += "(" + name + (text == "ROLLBACK" ? ",ROLLBACK" : "") + ")";
            }
            if (f.type == 'B') {
                std::string portal(r.cstr());
                out += "(" + portal + "," + std::string(r.cstr()) + ")";
            }
        }
        return out + "]";
    }

    std::string message(const std::string& step) {
        std::vector<std::string> f = split(step, ':');
        std::string out;
        proto::Writer w(out);
        auto rest = [&](size_t from) {
            std::string s;
            for (size_t i = from; i < f.size(); ++i) s += (i > from ? ":" : "") + f[i];
            return s;
        };
        switch (step[0]) {
        case 'Q': w.begin('Q').cstr(rest(1)).finish(); break;
        case 'P': w.begin('P').cstr(f[1]).cstr(rest(2)).i16(0).finish(); break;
        case 'B': w.begin('B').cstr(f[1]).cstr(f[2]).i16(0).i16(0).i16(0).finish(); break;
        case 'E': w.begin('E').cstr(f.size() > 1 ? f[1] : "").i32(0).finish(); break;
        case 'D': case 'C': w.begin(step[0]).byte(uint8_t(f[1][0])).cstr(f.size() > 2 ? f[2] : "").finish(); break;
        case 'S': case 'H': w.begin(step[0]).finish(); break;
        case 'F': w.begin('F').i32(1).i16(0).i16(0).i16(0).finish(); break;
        default: FAIL("unknown step " << step);
        }
        return out;
    }

    // Runs the steps; returns what the last step that planned something sent, as "0F[Q(BEGIN)] 1s[...]".
    std::string run(const std::string& steps) {
        std::string last;
        bool error_next = false;
        int error_executed = -1;
        for (const std::string& step : split(steps, '|')) {
            if (step.rfind("!X", 0) == 0) {  // the next step's reply carries an ErrorResponse (!Xn: after n Executes)
                error_next = true;
                error_executed = step.size() > 2 ? std::stoi(step.substr(2)) : -1;
                continue;
            }
            if (step == "!C") {  // a CommandComplete COMMIT reaches the client (before an error)
                dispatcher->note_commit_done();
                continue;
            }
            if (step.rfind("!E", 0) == 0) {  // node N reports an error inside the transaction
                nodes[size_t(step[2] - '0')].tx_status = 'E';
                dispatcher->note_ready('E');
                continue;
            }
            Plan plan;
            if (step[0] == 'Q' || step[0] == 'F') dispatcher->end_batch_before_query(nodes, plan);
            std::string m = message(step);
            dispatcher->on_message(step[0], m.data(), m.size(), nodes, plan);
            if (plan.sends.empty() && plan.client_reply.empty()) continue;
            last.clear();
            char forwarded = 0;
            for (const daemon::Send& s : plan.sends) {
                last += (last.empty() ? "" : " ") + render_send(s);
                simulate(s);
                if (s.delivery == Delivery::Forward && s.ready_count > 0) forwarded = nodes[size_t(s.node)].tx_status;
            }
            if (!plan.client_reply.empty()) last += (last.empty() ? "" : " ") + std::string("client");
            if (forwarded && error_next) dispatcher->note_error(error_executed);
            if (forwarded) dispatcher->note_ready(forwarded);
            error_next = error_next && !forwarded;
        }
        return last;
    }
};

struct Row {
    const char* policy;
    const char* steps;
    const char* expect;   // the sends of the last step that sent something
    const char* model;    // "" or facts of the session model: "tx", "written", "settings=N", "statements=N"
};

// A PREPARE/EXECUTE or Bind runs its statement: state follows what runs, not what was parsed.
const Row kRows[] = {
    // simple protocol basics: reads balanced, writes primary, settings replayed before first use
    {"", "Q:SELECT 1", "1FR[Q(SELECT 1)]", ""},
    {"", "Q:INSERT INTO t VALUES (1)", "0F[Q(INSERT INTO t VALUES (1))]", ""},
    {"", "Q:SET a.b = 1|Q:SELECT 1", "1s[Q(SET a.b = 1)] 1FR[Q(SELECT 1)]", "settings=1"},
    {"", "Q:SET a.b = 1|Q:SET a.b = 2|Q:RESET ALL|Q:SET c.d = 3|Q:SELECT 1",
     "1s[Q(RESET ALL) Q(SET c.d = 3)] 1FR[Q(SELECT 1)]", "settings=2"},
    // a setting runs on one node; the others get it before their next statement, once it stuck
    {"", "Q:SELECT 1|Q:SET a.b = 1", "0F[Q(SET a.b = 1)]", ""},
    {"", "Q:SELECT 1|Q:SET a.b = 1|Q:SELECT 2", "1s[Q(SET a.b = 1)] 1FR[Q(SELECT 2)]", "settings=1"},
    {"", "Q:SELECT 1|Q:SET a.b = 1|Q:SELECT 2|Q:SELECT 3", "1FR[Q(SELECT 3)]", "settings=1"},
    {"", "Q:SET a.b = 1|Q:INSERT INTO t VALUES (1)", "0F[Q(INSERT INTO t VALUES (1))]", "settings=1"},
    {"", "Q:SELECT 1|!X|Q:SET a.b = bad|Q:SELECT 2", "1FR[Q(SELECT 2)]", "settings=0"},
    {"", "Q:SELECT 1|!X|P::SELECT 1/0|B::|E:|P::SET a.b = 1|B::|E:|S|Q:SELECT 2", "1FR[Q(SELECT 2)]", "settings=0"},
    {"", "Q:SELECT 1|!X|P::SET a.b = 1|B::|E:|P::SELECT 1/0|B::|E:|S|Q:SELECT 2", "1FR[Q(SELECT 2)]", "settings=0"},
    // the unnamed statement parsed again later in the batch: the replay is the setting's own Parse
    {"stmt", "Q:SELECT 1|P::SELECT set_config('a.b', 'x', false)|B::|E:|P::SELECT 3|B::|E:|S|Q:SELECT 2",
     "1s[P() B(,) E S] 1FR[Q(SELECT 2)]", "settings=1+replays~set_config('a.b', 'x', false)"},
    {"", "Q:SELECT 1|P::SET a.b = 1|B::|E:|P::SELECT 1|B::|E:|S|Q:SELECT 2", "1s[P() B(,) E S] 1FR[Q(SELECT 2)]",
     "settings=1"},
    {"", "Q:BEGIN|Q:SELECT 1", "1s[Q(BEGIN)] 1F[Q(SELECT 1)]", "tx"},
    // 1. SQL PREPARE / EXECUTE: the EXECUTE of a write makes the transaction writing
    {"", "Q:PREPARE w AS INSERT INTO t VALUES (1)|Q:PREPARE r AS SELECT count(*) FROM t|Q:BEGIN|Q:EXECUTE r",
     "1s[Q(BEGIN)] 1F[Q(EXECUTE r)]", "tx"},
    {"", "Q:PREPARE w AS INSERT INTO t VALUES (1)|Q:PREPARE r AS SELECT 1|Q:BEGIN|Q:EXECUTE r|Q:EXECUTE w",
     "0F[Q(EXECUTE w)]", "tx+written"},
    {"", "Q:PREPARE w AS INSERT INTO t VALUES (1)|Q:PREPARE r AS SELECT 1|Q:BEGIN|Q:EXECUTE r|Q:EXECUTE w|Q:EXECUTE r",
     "0s[Q(PREPARE r AS SELECT 1)] 0F[Q(EXECUTE r)]", "tx+written"},
    {"", "Q:PREPARE w AS INSERT INTO t VALUES (1)|Q:BEGIN|Q:EXECUTE w|Q:SELECT count(*) FROM t",
     "0F[Q(SELECT count(*) FROM t)]", "tx+written"},
    {"", "Q:PREPARE r AS SELECT 1|Q:EXECUTE r", "1FR[Q(EXECUTE r)]", "statements=1"},
    {"", "Q:PREPARE r AS SELECT 1|Q:EXECUTE r|Q:DEALLOCATE r", "1F[Q(DEALLOCATE r)]", "statements=0"},
    {"", "Q:PREPARE w AS INSERT INTO t VALUES (1)|Q:EXECUTE w", "0F[Q(EXECUTE w)]", ""},
    {"", "Q:SELECT 1|Q:PREPARE w AS INSERT INTO t VALUES (1)|Q:EXECUTE w", "0F[Q(EXECUTE w)]", ""},
    {"", "Q:PREPARE r AS SELECT 1|Q:BEGIN|Q:INSERT INTO t VALUES (1)|Q:EXECUTE r|Q:DEALLOCATE r",
     "0F[Q(DEALLOCATE r)] 1s[Q(BEGIN)] 1s[Q(DEALLOCATE r)]", "tx+written"},
    // 2. a named prepared write reused in later transactions (pgbench -M prepared)
    {"", "P:w:UPDATE t SET n = n + 1|S|P:r:SELECT n FROM t|S|Q:BEGIN|B::r|E:|S|B::w|E:|S|B::r|E:|S",
     "0s[P(r) S] 0F[B(,r) E S]", "tx+written"},
    {"", "P:w:UPDATE t SET n = n + 1|S|P:r:SELECT n FROM t|S|Q:BEGIN|B::w|E:|S|Q:COMMIT|Q:BEGIN|B::w|E:|S|B::r|E:|S",
     "0s[P(r) S] 0F[B(,r) E S]", "tx+written"},
    {"", "P:r:SELECT n FROM t|S|B::r|E:|S", "1FR[B(,r) E S]", "statements=1"},
    {"", "P:r:SELECT n FROM t|S|B::r|E:|S|Q:BEGIN|Q:INSERT INTO t VALUES (1)|Q:COMMIT|B::r|E:|S", "1FR[B(,r) E S]", ""},
    // unnamed statements and pipelines: a batch runs on one node, the primary when anything in it writes
    {"", "P::SELECT 1|B::|E:|S", "1FR[P() B(,) E S]", ""},
    {"", "Q:BEGIN|P::INSERT INTO t VALUES (1)|B::|E:|P::SELECT 1|B::|E:|S", "0F[P() B(,) E P() B(,) E S]",
     "tx+written"},
    {"", "P::SELECT 1|B::|E:|P::INSERT INTO t VALUES (1)|B::|E:|S", "0F[P() B(,) E P() B(,) E S]", ""},
    // BEGIN may start on the standby its batch runs on; the primary joins at the first write
    {"", "P::BEGIN|B::|E:|P::SELECT 1|B::|E:|S", "1F[P() B(,) E P() B(,) E S]", "tx"},
    {"", "P::BEGIN|B::|E:|P::SELECT 1|B::|E:|S|P::INSERT INTO t VALUES (1)|B::|E:|S",
     "0s[Q(BEGIN)] 0F[P() B(,) E S]", "tx+written"},
    {"", "P::BEGIN|B::|E:|P::SELECT 1|B::|E:|S|P::INSERT INTO t VALUES (1)|B::|E:|S|P::COMMIT|B::|E:|S",
     "0F[P() B(,) E S] 1s[P() B(,) E S]", ""},
    {"", "P::BEGIN ISOLATION LEVEL SERIALIZABLE|B::|E:|P::SELECT 1|B::|E:|S", "0F[P() B(,) E P() B(,) E S]", "tx"},
    // 3. session settings sent as prepared statements reach every node of the session (before its next use)
    {"", "Q:SELECT 1|P:s:SET application_name = 'x'|S|B::s|E:|S", "0F[B(,s) E S]", "settings=1"},
    {"", "Q:SELECT 1|P:s:SET application_name = 'x'|S|B::s|E:|S|Q:SELECT 2", "1s[P() B(,) E S] 1FR[Q(SELECT 2)]",
     "settings=1"},
    {"", "P:s:SET application_name = 'x'|S|B::s|E:|S|Q:SELECT 1", "1s[P() B(,) E S] 1FR[Q(SELECT 1)]", "settings=1"},
    {"", "Q:SELECT 1|Q:SELECT set_config('application_name', 'x', false)",
     "0F[Q(SELECT set_config('application_name', 'x', false))]", "settings=1"},
    {"", "Q:SELECT set_config('application_name', 'x', false)|Q:SELECT 1",
     "1s[Q(SELECT set_config('application_name', 'x', false))] 1FR[Q(SELECT 1)]", ""},
    {"", "P::SELECT set_config('a.b', 'x', false)|B::|E:|S|Q:SELECT 1", "1s[P() B(,) E S] 1FR[Q(SELECT 1)]", "settings=1"},
    // settings inside a transaction: replayed on a node joining it, kept only when it commits
    {"", "Q:BEGIN|Q:SET LOCAL a.b = 1|Q:SELECT 1", "1s[Q(BEGIN) Q(SET LOCAL a.b = 1)] 1F[Q(SELECT 1)]", "tx"},
    {"", "Q:BEGIN|Q:SELECT set_config('a.b', '1', true)|Q:SELECT 1",
     "1s[Q(BEGIN) Q(SELECT set_config('a.b', '1', true))] 1F[Q(SELECT 1)]", "tx"},
    {"", "Q:BEGIN|Q:SET a.b = 1|Q:ROLLBACK|Q:SELECT 1", "1FR[Q(SELECT 1)]", "settings=0"},
    {"", "Q:BEGIN|Q:SET a.b = 1|Q:COMMIT|Q:SELECT 1", "1s[Q(SET a.b = 1)] 1FR[Q(SELECT 1)]", "settings=1"},
    {"", "Q:SELECT 1|Q:BEGIN|Q:SET a.b = 1|Q:COMMIT|Q:SELECT 2", "1s[Q(SET a.b = 1)] 1FR[Q(SELECT 2)]", "settings=1"},
    {"", "Q:SELECT 1|Q:BEGIN|Q:SET a.b = 1|Q:ROLLBACK|Q:SELECT 2", "1FR[Q(SELECT 2)]", "settings=0"},
    // a COMMIT with no settings leaves no node marked as having run the next SET (found by CI's
    // differential run after an early return skipped clearing the pending nodes)
    {"", "Q:BEGIN|Q:SELECT 1|Q:COMMIT|Q:SET a.b = 1|Q:SELECT 2", "1s[Q(SET a.b = 1)] 1FR[Q(SELECT 2)]", "settings=1"},
    {"", "Q:BEGIN|Q:SET a.b = 1|!X|Q:COMMIT|Q:SELECT 1", "1FR[Q(SELECT 1)]", "settings=0"},
    // COMMIT AND CHAIN made the setting final: the chained transaction's failure does not undo it
    // (seed 20261203, extended protocol)
    {"", "Q:BEGIN|Q:SET a.b = 1|Q:COMMIT AND CHAIN|!E0|Q:COMMIT|Q:SELECT 2", "1s[Q(SET a.b = 1)] 1FR[Q(SELECT 2)]",
     "settings=1"},
    {"", "P::BEGIN|B::|E:|P::SET a.b = 1|B::|E:|P::COMMIT AND CHAIN|B::|E:|S|!E0|Q:ROLLBACK|Q:SELECT 2",
     "1s[P() B(,) E S] 1FR[Q(SELECT 2)]", "settings=1"},
    // an error after the COMMIT in its pipeline leaves the setting in force; one at the COMMIT
    // (a deferred constraint) rolls it back
    {"", "!C|!X|P::BEGIN|B::|E:|P::SET a.b = 1|B::|E:|P::COMMIT|B::|E:|P::SELECT 1/0|B::|E:|S|Q:SELECT 2",
     "1s[P() B(,) E S] 1FR[Q(SELECT 2)]", "settings=1"},
    {"", "!X|P::BEGIN|B::|E:|P::SET a.b = 1|B::|E:|P::COMMIT|B::|E:|S|Q:SELECT 2", "1FR[Q(SELECT 2)]", "settings=0"},
    // a pipeline: a read, BEGIN | COMMIT, SET: the SET ran on the primary alone, which the
    // transaction's nodes must not hide (the standby that ran the read gets it replayed)
    {"", "P::SELECT 1|B::|E:|P::BEGIN|B::|E:|S|P::COMMIT|B::|E:|P::SET a.b = 1|B::|E:|S|Q:SELECT 2",
     "1s[P() B(,) E S] 1FR[Q(SELECT 2)]", "settings=1"},
    // a SET before BEGIN in one pipeline is part of the transaction: its ROLLBACK undoes it
    {"", "P::SET a.b = 1|B::|E:|P::BEGIN|B::|E:|S|Q:ROLLBACK|Q:SELECT 2", "1FR[Q(SELECT 2)]", "settings=0"},
    // ... and so is one before a BEGIN and ROLLBACK both in it; a ROLLBACK with no BEGIN ends the
    // pipeline's implicit transaction, undoing its settings (seed 20261207), a COMMIT with none
    // makes them final whatever error follows
    {"", "P::SET a.b = 1|B::|E:|P::BEGIN|B::|E:|P::ROLLBACK|B::|E:|S|Q:SELECT 2", "1FR[Q(SELECT 2)]", "settings=0"},
    {"", "P::SET a.b = 1|B::|E:|P::ROLLBACK|B::|E:|S|Q:SELECT 2", "1FR[Q(SELECT 2)]", "settings=0"},
    {"", "P::SET a.b = 1|B::|E:|P::ROLLBACK|B::|E:|P::SET c.d = 2|B::|E:|S|Q:SELECT 2",
     "1s[P() B(,) E S] 1FR[Q(SELECT 2)]", "settings=1+replays~c.d"},
    {"", "!C|!X|P::SET a.b = 1|B::|E:|P::COMMIT|B::|E:|P::SELECT 1/0|B::|E:|S|Q:SELECT 2",
     "1s[P() B(,) E S] 1FR[Q(SELECT 2)]", "settings=1"},
    {"", "!X|P::SET a.b = 1|B::|E:|P::COMMIT|B::|E:|P::SELECT 1/0|B::|E:|S|Q:SELECT 2", "1FR[Q(SELECT 2)]",
     "settings=0"},
    {"", "!C|!X|P::COMMIT|B::|E:|P::BEGIN|B::|E:|P::SET a.b = 1|B::|E:|P::COMMIT|B::|E:|S|Q:SELECT 2",
     "1FR[Q(SELECT 2)]", "settings=0"},
    // a multi-statement string runs on the primary: its settings reach the other nodes as if sent
    // alone; beside transaction control, or with other session state, reads stay on the primary
    {"", "Q:SET a.b = 1; SELECT 1|Q:SELECT 2", "1s[Q(SET a.b = 1)] 1FR[Q(SELECT 2)]", "settings=1"},
    {"", "Q:SELECT 1;  SET a.b = 1; RESET c.d|Q:SELECT 2", "1s[Q(SET a.b = 1) Q(RESET c.d)] 1FR[Q(SELECT 2)]",
     "settings=2"},
    {"", "Q:SELECT set_config('a.b', 'x', false); SELECT 1|Q:SELECT 2",
     "1s[Q(SELECT set_config('a.b', 'x', false))] 1FR[Q(SELECT 2)]", "settings=1"},
    {"", "!X|Q:SET a.b = 1; SELECT 1/0|Q:SELECT 2", "1FR[Q(SELECT 2)]", "settings=0"},
    {"", "Q:BEGIN|Q:SET a.b = 1; SELECT 1|Q:ROLLBACK|Q:SELECT 2", "1FR[Q(SELECT 2)]", "settings=0"},
    {"", "Q:SET a.b = 1; ROLLBACK|Q:SELECT 2", "0F[Q(SELECT 2)]", "settings=0"},
    {"", "Q:SET a.b = 1; COMMIT; SELECT 1/0|Q:SELECT 2", "0F[Q(SELECT 2)]", "settings=0"},
    {"", "Q:DISCARD ALL; SELECT 1|Q:SELECT 2", "0F[Q(SELECT 2)]", ""},
    {"", "Q:PREPARE p AS SELECT 1; SELECT 1|Q:SELECT 2", "0F[Q(SELECT 2)]", ""},
    {"", "Q:BEGIN|Q:SET LOCAL a.b = 1|Q:COMMIT|Q:SELECT 1", "1FR[Q(SELECT 1)]", "settings=0"},
    {"", "Q:BEGIN|Q:SAVEPOINT s|Q:SET a.b = 1|Q:ROLLBACK TO s|Q:SELECT 1",
     "1s[Q(BEGIN) Q(SAVEPOINT \"s\")] 1F[Q(SELECT 1)]", "tx"},
    {"", "Q:BEGIN|Q:SAVEPOINT s|Q:SET a.b = 1|Q:RELEASE s|Q:SELECT 1", "1s[Q(BEGIN) Q(SET a.b = 1)] 1F[Q(SELECT 1)]", "tx"},
    // 5. statements the router fans out reach every node it names
    {"", "Q:BEGIN|Q:SELECT 1|Q:LOCK t IN ACCESS SHARE MODE",
     "0F[Q(LOCK t IN ACCESS SHARE MODE)] 1s[Q(LOCK t IN ACCESS SHARE MODE)]", "tx"},
    {"", "Q:SELECT 1|Q:DISCARD TEMP", "0F[Q(DISCARD TEMP)] 1s[Q(DISCARD TEMP)]", ""},
    {"", "Q:SELECT 1|Q:DISCARD ALL", "0F[Q(DISCARD ALL)] 1s[Q(DISCARD ALL)]", "settings=0+statements=0"},
    // 4. functions a standby refuses: the primary, over both protocols
    {"", "Q:SELECT pg_current_xact_id()", "0F[Q(SELECT pg_current_xact_id())]", ""},
    {"", "P::SELECT txid_current()|B::|E:|S", "0F[P() B(,) E S]", ""},
    // failed transactions: the failed node answers, COMMIT rolls back everywhere
    {"", "Q:BEGIN|Q:SELECT 1|!E1|Q:SELECT 2", "1F[Q(SELECT 2)]", "tx"},
    {"", "Q:BEGIN|Q:SELECT 1|!E1|Q:COMMIT", "0s[Q(ROLLBACK)] 1F[Q(COMMIT)]", ""},
    {"", "Q:BEGIN|Q:SELECT 1|!E1|P::COMMIT|B::|E:|S", "0F[P(,ROLLBACK) B(,) E S] 1s[Q(ROLLBACK)]", ""},
    // a failed transaction: nothing but its end and ROLLBACK TO takes effect; a batch opening with
    // ROLLBACK (TO) reaches every node of the transaction and the rest of it runs where it belongs
    {"", "Q:BEGIN|Q:SELECT 1|!E1|Q:PREPARE p AS SELECT 1", "1F[Q(PREPARE p AS SELECT 1)]", "tx+statements=0"},
    {"", "Q:BEGIN|Q:SAVEPOINT a|Q:SELECT 1|!E1|Q:ROLLBACK TO a", "0s[Q(ROLLBACK TO a)] 1F[Q(ROLLBACK TO a)]", "tx"},
    {"", "Q:BEGIN|Q:SAVEPOINT a|Q:SELECT 1|!E1|Q:ROLLBACK TO a|Q:PREPARE p AS SELECT 1", "1F[Q(PREPARE p AS SELECT 1)]",
     "tx+statements=1"},
    {"", "Q:BEGIN|Q:SELECT 1|!E1|P::ROLLBACK|B::|E:|P::INSERT INTO t VALUES (1)|B::|E:|S",
     "0F[P(,ROLLBACK) B(,) E P() B(,) E S] 1s[Q(ROLLBACK)]", ""},
    {"", "P::BEGIN|B::|E:|P::SELECT 1|B::|E:|S|!E1|P::ROLLBACK|B::|E:|P::INSERT INTO t VALUES (1)|B::|E:|S",
     "0s[Q(BEGIN)] 0F[P(,ROLLBACK) B(,) E P() B(,) E S] 1s[Q(ROLLBACK)]", ""},
    // DISCARD ALL after another statement of its pipeline is refused (and the rest skipped): the
    // session keeps its settings and statements (seed 20261203, pipeline); first in it, or after
    // the pipeline's COMMIT, it runs
    {"", "Q:SET a.b = 1|P::SELECT 1|B::|E:|P::DISCARD ALL|B::|E:|S|Q:SELECT 2", "1s[Q(SET a.b = 1)] 1FR[Q(SELECT 2)]",
     "settings=1"},
    {"", "Q:PREPARE p AS SELECT 1|P::SELECT 1|B::|E:|P::DISCARD ALL|B::|E:|P::DEALLOCATE p|B::|E:|S",
     "0F[P() B(,) E P() B(,) E P() B(,) E S]", "statements=2"},
    {"", "Q:SET a.b = 1|P::DISCARD ALL|B::|E:|P::SELECT 1|B::|E:|S|Q:SELECT 2", "1FR[Q(SELECT 2)]", "settings=0"},
    {"", "Q:SET a.b = 1|P::BEGIN|B::|E:|P::COMMIT|B::|E:|P::DISCARD ALL|B::|E:|S|Q:SELECT 2", "1FR[Q(SELECT 2)]",
     "settings=0"},
    {"", "P::SAVEPOINT s|B::|E:|P::PREPARE p AS SELECT 1|B::|E:|S", "0F[P() B(,) E P() B(,) E S]", "statements=1"},
    // an error in a pipeline: PostgreSQL skips the rest, so a later SQL PREPARE or a Parse after the
    // failing Execute created nothing (seed 20261203); one that ran before the error stays
    {"", "!X0|P::SELECT 1/0|B::|E:|P::PREPARE p AS SELECT 1|B::|E:|S", "1FR[P() B(,) E P() B(,) E S]", "statements=1"},
    {"", "!X0|P::SELECT 1/0|B::|E:|P:q:SELECT 2|S", "1FR[P() B(,) E P(q) S]", "statements=1"},
    {"", "!X1|P::PREPARE p AS SELECT 1|B::|E:|P::SELECT 1/0|B::|E:|S", "1FR[P() B(,) E P() B(,) E S]", "statements=2"},
    {"", "Q:PREPARE p AS SELECT 1|!X0|P::INSERT INTO t VALUES (1)|B::|E:|P::DEALLOCATE ALL|B::|E:|S",
     "0F[P() B(,) E P() B(,) E S] 1s[P() B(,) E S]", "statements=2"},
    {"", "Q:PREPARE p AS SELECT 1|!X2|P::INSERT INTO t VALUES (1)|B::|E:|P::DEALLOCATE ALL|B::|E:|P::SELECT 1/0|B::|E:|S",
     "0F[P() B(,) E P() B(,) E P() B(,) E S] 1s[P() B(,) E S]", "statements=0"},
    // a PREPARE of a name in use, in a batch on the primary: created there first, then refused (42P05);
    // a later EXECUTE there must not create it again (seed 20261221 pipeline session 2410: that
    // second create failed inside a serializable transaction and aborted it)
    {"", "Q:PREPARE r AS SELECT 2|P::ROLLBACK|B::|E:|P::PREPARE r AS SELECT 2|B::|E:|!X1|S|Q:BEGIN ISOLATION LEVEL SERIALIZABLE|"
         "P::SELECT 1 FROM t FOR UPDATE|B::|E:|P::EXECUTE r|B::|E:|S",
     "0F[P() B(,) E P() B(,) E S]", "tx+written+statements=2"},
    {"", "Q:PREPARE r AS SELECT 2|P::ROLLBACK|B::|E:|P::PREPARE r AS SELECT 2|B::|E:|S",
     "0s[Q(PREPARE r AS SELECT 2)] 0F[P(,ROLLBACK) B(,) E P() B(,) E S] 1s[P() B(,) E S]", "statements=2"},
    // a Query inside an open batch (pgjdbc autosave: BEGIN, Query SAVEPOINT, SELECT, Sync): the
    // messages before it go first, ended by a Flush, then a Sync, then the Query, all on one node
    {"", "P::BEGIN|B::|E:|Q:SAVEPOINT PGJDBC_AUTOSAVE", "0F[P() B(,) E H] 0s[S] 0F[Q(SAVEPOINT PGJDBC_AUTOSAVE)]", "tx"},
    {"", "P::BEGIN|B::|E:|Q:SAVEPOINT PGJDBC_AUTOSAVE|P::SELECT 1|B::|E:|S",
     "1s[Q(BEGIN) Q(SAVEPOINT \"pgjdbc_autosave\")] 1F[P() B(,) E S]", "tx"},
    // a Bind of an unknown statement fails: what follows it in the batch does not run
    {"", "B::zz|E:|P::PREPARE p AS SELECT 1|B::|E:|S", "1F[B(,zz) E P() B(,) E S]", "statements=1"},
    // a batch opening with the failed transaction's end on the failed node, and binding a statement
    // that node lacks: it is created after that end (in the failed transaction it would fail too)
    {"", "P:r:SELECT 2|S|Q:BEGIN|Q:INSERT INTO t VALUES (1)|!E0|P::ROLLBACK|B::|E:|B::r|E:|S",
     "0Fz[P(,ROLLBACK) B(,) E S] 0s[P(r) S] 0F[B(,r) E S]", ""},
    {"", "Q:PREPARE r AS SELECT 2|Q:BEGIN|Q:INSERT INTO t VALUES (1)|!E0|P::COMMIT|B::|E:|P::EXECUTE r|B::|E:|S",
     "0Fz[P() B(,) E S] 0s[Q(PREPARE r AS SELECT 2)] 0F[P() B(,) E S]", ""},
    {"", "Q:PREPARE r AS SELECT 2|Q:BEGIN|Q:INSERT INTO t VALUES (1)|!E0|P::COMMIT AND CHAIN|B::|E:|P::EXECUTE r|B::|E:|S",
     "0Fz[P() B(,) E S] 0s[Q(PREPARE r AS SELECT 2)] 0F[P() B(,) E S]", ""},
    // a batch opening with COMMIT: the failed node rolls back, the rest runs where it belongs, and
    // the node answering for the COMMIT gets ROLLBACK in its place (a COMMIT would commit there)
    {"", "Q:BEGIN|Q:SELECT 1|!E1|P::COMMIT|B::|E:|P::INSERT INTO t VALUES (1)|B::|E:|S",
     "0F[P(,ROLLBACK) B(,) E P() B(,) E S] 1s[Q(ROLLBACK)]", ""},
    {"", "Q:BEGIN|Q:SELECT 1|!E1|P::COMMIT|B::|E:|S|B::|E:|S", "0s[P() S] 0F[B(,) E S]", ""},
    // ... but not a named COMMIT (it would stay ROLLBACK on that node) nor COMMIT AND CHAIN
    {"", "Q:BEGIN|Q:SELECT 1|!E1|P:c:COMMIT|B::c|E:|P::INSERT INTO t VALUES (1)|B::|E:|S",
     "1F[P(c) B(,c) E P() B(,) E S] 0s[Q(ROLLBACK)]", ""},
    {"", "Q:BEGIN|Q:SELECT 1|!E1|P::COMMIT AND CHAIN|B::|E:|P::INSERT INTO t VALUES (1)|B::|E:|S",
     "1F[P() B(,) E P() B(,) E S] 0s[Q(ROLLBACK)]", ""},
    // a node joins the transaction as the run it gets finds it, not as the batch began
    {"", "Q:SELECT 1|Q:BEGIN|Q:INSERT INTO t VALUES (1)|P::COMMIT|B::|E:|P::DISCARD TEMP|B::|E:|P::BEGIN|B::|E:|S",
     "0F[P() B(,) E P() B(,) E P() B(,) E S] 1s[P() B(,) E S]", "tx"},
    {"", "Q:SELECT 1|P::BEGIN|B::|E:|P::SET LOCAL a.b = 1|B::|E:|P::INSERT INTO t VALUES (1)|B::|E:|S",
     "0F[P() B(,) E P() B(,) E P() B(,) E S]", "tx+written"},
    {"", "Q:BEGIN|Q:SELECT 1|Q:SELECT 2|Q:BEGIN|Q:COMMIT", "0F[Q(COMMIT)] 1s[Q(COMMIT)]", ""},
    // a prepared DISCARD ALL bound later: the nodes lacking it get it first, though it forgets itself
    {"", "Q:SELECT 1|P:d:DISCARD ALL|D:S:d|S|B::d|E:|S", "0F[B(,d) E S] 1s[P(d) S] 1s[B(,d) E S]", "statements=0"},
    // a Query after a Flush-ended batch closes it first (asyncpg)
    {"", "P:a:SELECT 1|D:S:a|H", "1F[P(a) D H]", ""},
    {"", "P:a:SELECT 1|D:S:a|H|Q:INSERT INTO t VALUES (1)", "1s[S] 0F[Q(INSERT INTO t VALUES (1))]", ""},
    // Close of a statement reaches every node where it exists
    {"", "P:r:SELECT 1|S|Q:BEGIN|Q:INSERT INTO t VALUES (1)|B::r|E:|S|Q:COMMIT|C:S:r|S", "0F[C S] 1s[C S]",
     "statements=0"},
    // a FunctionCall may write: the primary
    {"", "Q:SELECT 1|F", "0F[F]", ""},
    // statement-level balancing keeps a named read where it exists
    {"stmt", "P:r:SELECT 1|S|B::r|E:|S", "1FR[B(,r) E S]", ""},
};

void check_model(const daemon::SessionModel& m, const std::string& facts) {
    bool tx = false, written = false;
    for (const std::string& f : split(facts, '+')) {
        if (f.empty()) continue;
        if (f == "tx") tx = true;
        else if (f == "written") written = true;
        else if (f.rfind("settings=", 0) == 0) CHECK(m.settings.size() == std::stoul(f.substr(9)));
        else if (f.rfind("replays~", 0) == 0)
            CHECK((!m.settings.empty() && m.settings.back().bytes.find(f.substr(8)) != std::string::npos));
        else if (f.rfind("statements=", 0) == 0) CHECK(m.statements.size() == std::stoul(f.substr(11)));
        else FAIL("unknown model fact " << f);
    }
    if (facts.empty()) return;
    CHECK(m.in_transaction == tx);
    CHECK(m.transaction_written == written);
}

}  // namespace

TEST_CASE("dispatcher table") {
    for (const Row& row : kRows) {
        Harness h(row.policy);
        std::string got = h.run(row.steps);
        INFO("policy='" << std::string(row.policy) << "' steps='" << std::string(row.steps) << "'");
        CHECK(got == std::string(row.expect));
        check_model(h.dispatcher->model(), row.model);
    }
    MESSAGE("dispatcher table rows: " << std::size(kRows));
}

TEST_CASE("session model: savepoints, settings and their replay") {
    daemon::SessionModel m;
    daemon::RoutingPolicy policy;
    auto note = [&](const std::string& sql, bool everywhere = true) {
        parser::Classification c = parser::classify(sql);
        daemon::RouteDecision d;
        d.target = everywhere ? daemon::Target::Session : daemon::Target::Primary;
        d.node = 0;
        d.nodes.set(0);
        std::string bytes;
        proto::put_query(bytes, sql);
        daemon::note_statement(m, c, sql, d, policy, daemon::is_session_setting(c) ? bytes : std::string());
    };
    auto ready_for_query = [&](char status) { daemon::note_transaction_status(m, status, false); };
    note("SET a.b = 1");
    CHECK(m.settings.empty());  // pending until its ReadyForQuery shows it stuck
    ready_for_query('I');
    note("SET a.b = 2");
    ready_for_query('I');
    CHECK(m.settings.size() == 1);  // a later SET of the same name replaces the earlier one
    CHECK(m.node_settings[0] == m.settings_seq);  // node 0 ran them: nothing to replay there
    int replayed = 0;
    CHECK(daemon::replay_bytes(m, 1, &replayed).size() > 0);
    CHECK(replayed == 1);
    CHECK(daemon::replay_bytes(m, 1, &replayed).empty());  // node 1 is up to date now
    note("SET e.f = 1");
    daemon::note_error(m);
    ready_for_query('I');
    CHECK(m.settings.size() == 1);  // an error before its ReadyForQuery: PostgreSQL undid it
    note("SET transaction_read_only = off", false);
    ready_for_query('I');
    CHECK(m.settings.size() == 1);  // primary-only settings are not replayed on standbys
    note("BEGIN");
    note("SAVEPOINT x");
    note("SET LOCAL c.d = 1");
    note("SAVEPOINT y");
    CHECK(daemon::join_transaction_statements(m) == std::vector<std::string>{"BEGIN", "SAVEPOINT \"x\"", "SAVEPOINT \"y\""});
    int ready = 0;
    daemon::join_transaction_bytes(m, m.transaction_log.size(), &ready);
    CHECK(ready == 4);
    note("ROLLBACK TO x");
    CHECK(m.transaction_log.size() == 1);
    note("SET g.h = 1");
    note("COMMIT");
    ready_for_query('I');
    CHECK(m.settings.size() == 2);
    CHECK(daemon::replay_bytes(m, 1, &replayed).size() > 0);
    CHECK(replayed == 1);  // only the setting node 1 has not seen
    for (int i = 0; i < 300; ++i) note("SET x.v" + std::to_string(i) + " = 1");
    ready_for_query('I');
    CHECK(m.settings.size() == daemon::SessionModel::kMaxSettings);
    CHECK_FALSE(m.settings_unreplayable.empty());  // the replay log is bounded: reads then stay on the primary
    note("DISCARD ALL");
    CHECK(m.settings.empty());
    CHECK(m.settings_unreplayable.empty());
}
