// Unit tests for SHOW POOL_* and PGPOOL SHOW/SET/RESET: the protocol bytes decoded message by message.
#include <doctest/doctest.h>

#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "daemon/admin_sql.hpp"
#include "daemon/proto/frame.hpp"
#include "shm/segment.hpp"

using namespace splitpool;
using daemon::AdminSession;

namespace {

struct Message {
    char type;
    std::string body;
};

std::vector<Message> decode(const std::string& bytes) {
    std::vector<Message> out;
    size_t at = 0;
    while (at < bytes.size()) {
        proto::Frame f;
        REQUIRE(proto::parse_frame(bytes.data() + at, bytes.size() - at, f) == proto::FrameStatus::Ok);
        out.push_back({f.type, std::string(f.body, f.body_size())});
        at += f.size();
    }
    return out;
}

std::vector<std::string> columns_of(const Message& m) {
    REQUIRE(m.type == 'T');
    proto::Reader r(m.body.data(), m.body.size());
    int n = r.i16();
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i) {
        names.emplace_back(r.cstr());
        r.i32();
        r.i16();
        CHECK(r.i32() == 25);   // text
        r.i16();
        r.i32();
        r.i16();
    }
    CHECK(r.ok());
    CHECK(r.remaining() == 0);
    return names;
}

std::vector<std::string> row_of(const Message& m) {
    REQUIRE(m.type == 'D');
    proto::Reader r(m.body.data(), m.body.size());
    int n = r.i16();
    std::vector<std::string> values;
    for (int i = 0; i < n; ++i) values.emplace_back(r.bytes(size_t(r.i32())));
    CHECK(r.ok());
    return values;
}

std::map<char, std::string> error_fields(const Message& m) {
    REQUIRE(m.type == 'E');
    proto::Reader r(m.body.data(), m.body.size());
    std::map<char, std::string> fields;
    for (uint8_t t = r.byte(); r.ok() && t != 0; t = r.byte()) fields[char(t)] = std::string(r.cstr());
    return fields;
}

std::string tag_of(const Message& m) {
    REQUIRE(m.type == 'C');
    return std::string(m.body.c_str());
}

// A table with three nodes (node 0 primary) and two children, one of them in a session.
struct Fixture {
    std::string name = "splitpool.unit.admin." + std::to_string(getpid());
    std::unique_ptr<shm::StatusTable> table;
    daemon::Config config;
    AdminSession session;

    Fixture() {
        table = shm::StatusTable::create(name, 2, nullptr);
        REQUIRE(table);
        table->set_num_nodes(3);
        for (int i = 0; i < 3; ++i) {
            table->set_node_text(i, "127.0.0.1", 5432 + i, "node" + std::to_string(i));
            table->set_node_status(i, shm::NodeStatus::Up);
            table->node(i).weight = i == 0 ? 1.0 : 2.0;
            table->node(i).select_count = uint64_t(10 * i);
        }
        table->header().primary_node = 0;
        table->reset_child(0, getpid());
        table->child(0).state = uint8_t(shm::ChildState::Idle);
        table->child(0).sessions_served = 7;
        table->child(0).backend[1].pid = 4242;
        table->set_child_text(0, {"127.0.0.1:5000", "appdb", "alice", "psql"});
        table->reset_child(1, 999999);
        table->child(1).state = uint8_t(shm::ChildState::WaitingForClient);
        config.health_check_period = 0;   // no live probes in unit tests
        session.load_balance_node = 1;
    }
    ~Fixture() { shm::Segment::remove(name); }

    std::vector<Message> ask(std::string_view sql, bool extended = false) {
        return decode(daemon::answer_admin_command(sql, config, *table, session, extended));
    }
};

}  // namespace

TEST_CASE("is_admin_command matches SHOW POOL_* and PGPOOL after blanks and comments only") {
    using daemon::is_admin_command;
    CHECK(is_admin_command("SHOW POOL_NODES"));
    CHECK(is_admin_command("  show\tpool_nodes;"));
    CHECK(is_admin_command("/* x */ -- y\n Show Pool_Status"));
    CHECK(is_admin_command("pgpool show client_idle_limit"));
    CHECK(is_admin_command("PGPOOL SET log_statement = on"));
    CHECK_FALSE(is_admin_command("show search_path"));
    CHECK_FALSE(is_admin_command("showpool_nodes"));
    CHECK_FALSE(is_admin_command("select * from pgpool"));
    CHECK_FALSE(is_admin_command("pgpool_x"));
    CHECK_FALSE(is_admin_command("pgpool"));
    CHECK_FALSE(is_admin_command(""));
}

TEST_CASE("SHOW POOL_NODES has pgpool's 14 columns and one row per node") {
    Fixture fx;
    auto msgs = fx.ask("SHOW POOL_NODES");
    REQUIRE(msgs.size() == 5);
    CHECK(columns_of(msgs[0]) ==
          std::vector<std::string>{"node_id", "hostname", "port", "status", "pg_status", "lb_weight", "role",
                                   "pg_role", "select_cnt", "load_balance_node", "replication_delay",
                                   "replication_state", "replication_sync_state", "last_status_change"});
    auto r0 = row_of(msgs[1]);
    auto r1 = row_of(msgs[2]);
    REQUIRE(r0.size() == 14);
    CHECK(r0[0] == "0");
    CHECK(r0[1] == "127.0.0.1");
    CHECK(r0[2] == "5432");
    CHECK(r0[3] == "up");
    CHECK(r0[4] == "unknown");
    CHECK(r0[5] == "0.200000");
    CHECK(r0[6] == "primary");
    CHECK(r0[9] == "false");
    CHECK(r1[5] == "0.400000");
    CHECK(r1[6] == "standby");
    CHECK(r1[8] == "10");
    CHECK(r1[9] == "true");
    CHECK(r1[13].size() == 19);   // %Y-%m-%d %H:%M:%S
    CHECK(tag_of(msgs[4]) == "SELECT 3");
}

TEST_CASE("SHOW POOL_PROCESSES, POOL_POOLS, POOL_HEALTH_CHECK_STATS and POOL_BACKEND_STATS columns") {
    Fixture fx;
    auto procs = fx.ask("show pool_processes");
    CHECK(columns_of(procs[0]) == std::vector<std::string>{"pool_pid", "start_time", "client_connection_count",
                                                           "database", "username", "backend_connection_time",
                                                           "pool_counter", "status"});
    REQUIRE(procs.size() == 4);   // two children
    auto p0 = row_of(procs[1]);
    CHECK(p0[0] == std::to_string(getpid()));
    CHECK(p0[2] == "7");
    CHECK(p0[3] == "appdb");
    CHECK(p0[4] == "alice");
    CHECK(p0[7] == "Idle");
    CHECK(row_of(procs[2])[7] == "Wait for connection");

    auto pools = fx.ask("SHOW POOL_POOLS");
    CHECK(columns_of(pools[0]).size() == 18);
    REQUIRE(pools.size() == 1 + 2 * 3 + 1);
    auto slot01 = row_of(pools[2]);   // child 0, node 1
    CHECK(slot01[4] == "1");
    CHECK(slot01[14] == "4242");
    CHECK(slot01[15] == "1");
    CHECK(slot01[17] == "1");         // this session's load-balance node
    CHECK(row_of(pools[1])[15] == "0");

    auto hc = fx.ask("SHOW POOL_HEALTH_CHECK_STATS");
    CHECK(columns_of(hc[0]).size() == 20);
    CHECK(row_of(hc[1]).size() == 20);
    CHECK(row_of(hc[2])[4] == "standby");

    auto bs = fx.ask("SHOW POOL_BACKEND_STATS");
    CHECK(columns_of(bs[0]) == std::vector<std::string>{"node_id", "hostname", "port", "status", "role",
                                                        "select_cnt", "insert_cnt", "update_cnt", "delete_cnt",
                                                        "ddl_cnt", "other_cnt", "panic_cnt", "fatal_cnt",
                                                        "error_cnt"});
    CHECK(row_of(bs[3])[5] == "20");
}

TEST_CASE("SHOW POOL_STATUS lists every key then the backends; SHOW POOL_VERSION one value") {
    Fixture fx;
    auto st = fx.ask("SHOW POOL_STATUS");
    CHECK(columns_of(st[0]) == std::vector<std::string>{"item", "value", "description"});
    REQUIRE(st.size() == daemon::config_keys().size() + 15 + 2);
    CHECK(row_of(st[1])[0] == std::string(daemon::config_keys()[0].name));
    bool found = false;
    for (auto& m : st)
        if (m.type == 'D' && row_of(m)[0] == "backend_port2") found = row_of(m)[1] == "5434";
    CHECK(found);
    auto v = fx.ask("show pool_version");
    REQUIRE(v.size() == 3);
    CHECK(columns_of(v[0]) == std::vector<std::string>{"pool_version"});
    CHECK(row_of(v[1])[0].rfind("4.3.0 (splitpool ", 0) == 0);
}

TEST_CASE("unknown SHOW POOL_ item and garbage are errors with SQLSTATEs") {
    Fixture fx;
    auto e = fx.ask("SHOW POOL_FOO");
    REQUIRE(e.size() == 1);
    CHECK(error_fields(e[0])['C'] == "42704");
    CHECK(error_fields(fx.ask("SHOW POOL_NODES extra")[0])['C'] == "42601");
    CHECK(error_fields(fx.ask("PGPOOL FROB x")[0])['C'] == "42601");
    CHECK(error_fields(fx.ask("PGPOOL SHOW no_such_key")[0])['C'] == "42704");
    CHECK(error_fields(fx.ask("PGPOOL SET port = 1")[0])['C'] == "55P02");
    CHECK(error_fields(fx.ask("PGPOOL SET log_statement = maybe")[0])['C'] == "22023");
    CHECK(error_fields(fx.ask("PGPOOL SET log_statement on")[0])['C'] == "42601");
    CHECK(error_fields(fx.ask("PGPOOL SET log_statement = 'on")[0])['C'] == "42601");
}

TEST_CASE("PGPOOL SET changes only the session overlay; SHOW sees it; RESET drops it") {
    Fixture fx;
    auto show = [&](std::string_view key) {
        auto m = fx.ask(std::string("PGPOOL SHOW ") + std::string(key));
        REQUIRE(m.size() == 3);
        CHECK(columns_of(m[0]) == std::vector<std::string>{std::string(key)});
        CHECK(tag_of(m[2]) == "SHOW");
        return row_of(m[1])[0];
    };
    CHECK(show("client_idle_limit") == "0");
    auto set = fx.ask("PGPOOL SET client_idle_limit = '5min'");
    REQUIRE(set.size() == 1);
    CHECK(tag_of(set[0]) == "SET");
    CHECK(show("client_idle_limit") == "300");
    CHECK(fx.ask("pgpool set log_statement to ON;").size() == 1);
    CHECK(show("log_statement") == "on");
    CHECK(fx.config.log_statement == false);   // the shared config is untouched

    daemon::Config effective = fx.config;
    daemon::apply_session_overlay(fx.session, effective);
    CHECK(effective.client_idle_limit == 300);
    CHECK(effective.log_statement);

    bool overlaid = false;
    for (auto& m : fx.ask("PGPOOL SHOW ALL"))
        if (m.type == 'D' && row_of(m)[0] == "log_statement") overlaid = row_of(m)[1] == "on";
    CHECK(overlaid);

    CHECK(tag_of(fx.ask("PGPOOL RESET client_idle_limit")[0]) == "RESET");
    CHECK(show("client_idle_limit") == "0");
    CHECK(fx.ask("PGPOOL SET statement_level_load_balance = DEFAULT").size() == 1);
    fx.ask("PGPOOL RESET ALL");
    CHECK(fx.session.values.empty());
    CHECK(show("backend_port1") == "5433");
}

TEST_CASE("extended protocol: Describe answers RowDescription without side effects, Execute the rows") {
    Fixture fx;
    auto desc = decode(daemon::admin_row_description("SHOW POOL_NODES", fx.config, *fx.table, fx.session, {1}));
    REQUIRE(desc.size() == 1);
    CHECK(columns_of(desc[0]).size() == 14);
    {
        // the last field of each column description is the format code
        proto::Reader r(desc[0].body.data(), desc[0].body.size());
        r.i16();
        r.cstr();
        r.bytes(16);
        CHECK(r.i16() == 1);
    }
    auto rows = decode(daemon::admin_data_rows("SHOW POOL_NODES", fx.config, *fx.table, fx.session));
    REQUIRE(rows.size() == 4);
    CHECK(rows[0].type == 'D');
    CHECK(tag_of(rows[3]) == "SELECT 3");

    auto nodata = decode(daemon::admin_row_description("PGPOOL SET log_statement = on", fx.config, *fx.table,
                                                        fx.session));
    REQUIRE(nodata.size() == 1);
    CHECK(nodata[0].type == 'n');
    CHECK(fx.session.values.empty());
    decode(daemon::admin_data_rows("PGPOOL SET log_statement = on", fx.config, *fx.table, fx.session));
    CHECK(fx.session.values.at("log_statement") == "on");

    auto err = decode(daemon::admin_row_description("SHOW POOL_NOPE", fx.config, *fx.table, fx.session));
    CHECK(err[0].type == 'E');
    auto pd = decode(daemon::admin_parameter_description());
    REQUIRE(pd.size() == 1);
    CHECK(pd[0].type == 't');
    CHECK(pd[0].body == std::string("\0\0", 2));
}
