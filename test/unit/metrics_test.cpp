// Unit tests for the Prometheus endpoint: the text format, and the HTTP server process end to end.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <sstream>
#include <string>

#include "daemon/metrics.hpp"
#include "shm/segment.hpp"

using namespace splitpool;

namespace {

struct Table {
    std::string name = "splitpool.unit.metrics." + std::to_string(getpid());
    std::unique_ptr<shm::StatusTable> table;
    Table() {
        table = shm::StatusTable::create(name, 3, nullptr);
        REQUIRE(table);
        table->set_num_nodes(2);
        table->set_node_text(0, "127.0.0.1", 5432, "node0");
        table->set_node_text(1, "db\"1", 5433, "node1");
        table->set_node_status(0, shm::NodeStatus::Up);
        table->set_node_status(1, shm::NodeStatus::Down);
        table->node(0).weight = 1.0;
        table->node(1).weight = 3.0;
        table->node(1).select_count = 42;
        table->node(0).replication_delay = -1;
        table->node(1).replication_delay = 128;
        table->header().primary_node = 0;
        for (int i = 0; i < 3; ++i) table->reset_child(i, 1000 + i);
        table->child(0).state = uint8_t(shm::ChildState::Idle);
        table->child(0).backend[0].pid = 77;
        table->child(0).sessions_served = 5;
        table->child(1).state = uint8_t(shm::ChildState::WaitingForClient);
        table->child(1).sessions_served = 2;
        table->header().sessions_total = 7;  // children count into it as they serve
        table->header().query_duration_bucket[0] = 3;
        table->header().query_duration_bucket[2] = 1;
        table->header().query_duration_sum_us = 2000;
        table->header().query_count = 4;
        table->node(1).statements[int(shm::StatementClass::Insert)] = 9;
        table->child(2).state = uint8_t(shm::ChildState::WaitingForClient);
        table->child(2).backend[0].pid = 78;
        table->child(2).backend[1].pid = 79;
    }
    ~Table() { shm::Segment::remove(name); }
};

// "name{labels}" -> value, checking that every sample line parses and has a TYPE line before it.
std::map<std::string, std::string> samples(const std::string& body) {
    std::map<std::string, std::string> out;
    std::istringstream in(body);
    std::string line, typed;
    while (std::getline(in, line)) {
        if (line.rfind("# TYPE ", 0) == 0) {
            typed = line.substr(7, line.find(' ', 7) - 7);
            continue;
        }
        if (line.empty() || line[0] == '#') continue;
        size_t sp = line.rfind(' ');
        REQUIRE(sp != std::string::npos);
        std::string key = line.substr(0, sp);
        CHECK(key.rfind(typed, 0) == 0);
        out[key] = line.substr(sp + 1);
    }
    return out;
}

std::string http_get(int port, const std::string& path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
    REQUIRE(write(fd, req.data(), req.size()) == ssize_t(req.size()));
    std::string resp;
    char buf[4096];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) resp.append(buf, size_t(n));
    close(fd);
    return resp;
}

}  // namespace

TEST_CASE("metrics: node, child and session samples in text format 0.0.4") {
    Table t;
    auto s = samples(daemon::render_metrics(*t.table));
    std::string n0 = "{node=\"0\",hostname=\"127.0.0.1\",port=\"5432\"}";
    std::string n1 = "{node=\"1\",hostname=\"db\\\"1\",port=\"5433\"}";
    CHECK(s["splitpool_node_status" + n0] == "2");
    CHECK(s["splitpool_node_status" + n1] == "3");
    CHECK(s["splitpool_node_up" + n1] == "0");
    CHECK(s["splitpool_node_primary" + n0] == "1");
    CHECK(s["splitpool_node_weight" + n1] == "0.75");
    CHECK(s["splitpool_node_select_total" + n1] == "42");
    CHECK(s.count("splitpool_node_replication_delay_bytes" + n0) == 0);   // unknown: no sample
    CHECK(s["splitpool_node_replication_delay_bytes" + n1] == "128");
    CHECK(s["splitpool_node_backend_connections" + n0] == "2");
    CHECK(s["splitpool_node_backend_connections" + n1] == "1");
    CHECK(s["splitpool_children{state=\"idle\"}"] == "1");
    CHECK(s["splitpool_children{state=\"wait_for_connection\"}"] == "2");
    CHECK(s["splitpool_children{state=\"active\"}"] == "0");
    CHECK(s["splitpool_sessions_served_total"] == "7");
    CHECK(s["splitpool_node_statements_total" + n1.substr(0, n1.size() - 1) + ",class=\"insert\"}"] == "9");
    CHECK(s["splitpool_query_duration_seconds_bucket{le=\"0.0005\"}"] == "3");
    CHECK(s["splitpool_query_duration_seconds_bucket{le=\"0.0025\"}"] == "4");  // cumulative
    CHECK(s["splitpool_query_duration_seconds_bucket{le=\"+Inf\"}"] == "4");
    CHECK(s["splitpool_query_duration_seconds_count"] == "4");
}

TEST_CASE("metrics: replication facts and health-check statistics") {
    Table t;
    shm::NodeSlot& n1 = t.table->node(1);
    n1.replication_lag_us = 1500000;
    n1.replication_state = uint8_t(shm::ReplicationState::Streaming);
    n1.replication_sync_state = uint8_t(shm::SyncState::Async);
    t.table->node(0).role = uint8_t(shm::NodeRole::Primary);
    n1.role = uint8_t(shm::NodeRole::Standby);
    n1.health_check_success = 5;
    n1.health_check_fail = 2;
    n1.health_check_retries = 1;       // 6 rounds
    n1.health_check_duration_sum_ms = 1200;
    n1.health_check_max_ms = 700;
    n1.health_check_last_success = 1700000000;
    std::string l0 = "{node=\"0\",hostname=\"127.0.0.1\",port=\"5432\"", l1 = "{node=\"1\",hostname=\"db\\\"1\",port=\"5433\"";
    auto checked = samples(daemon::render_metrics(*t.table, true));
    const struct {
        std::string key, value;
    } rows[] = {
        {"splitpool_node_reported_primary" + l0 + "}", "1"},
        {"splitpool_node_reported_primary" + l1 + "}", "0"},
        {"splitpool_node_replication_lag_seconds" + l1 + "}", "1.5"},
        {"splitpool_node_replication_state" + l1 + ",state=\"streaming\",sync_state=\"async\"}", "1"},
        {"splitpool_node_health_check_retries_total" + l1 + "}", "1"},
        {"splitpool_node_health_check_duration_seconds_sum" + l1 + "}", "1.2"},
        {"splitpool_node_health_check_duration_seconds_count" + l1 + "}", "6"},
        {"splitpool_node_health_check_max_duration_seconds" + l1 + "}", "0.7"},
        {"splitpool_node_health_check_last_success_timestamp_seconds" + l1 + "}", "1700000000"},
        {"splitpool_node_health_check_last_failure_timestamp_seconds" + l1 + "}", "0"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.key);
        CHECK(checked[r.key] == r.value);
    }
    CHECK(checked.count("splitpool_node_replication_lag_seconds" + l0 + "}") == 0);  // the primary has none
    // Without the replication check a role is only what the configuration implies: not exported.
    auto unchecked = samples(daemon::render_metrics(*t.table));
    CHECK(unchecked.count("splitpool_node_reported_primary" + l0 + "}") == 0);
}

TEST_CASE("metrics server: GET /metrics answers 200 with the samples, other paths 404") {
    Table t;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(lfd, 8) == 0);
    socklen_t len = sizeof a;
    getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
    int port = ntohs(a.sin_port);
    pid_t pid = fork();
    if (pid == 0) {
        daemon::Config config;
        daemon::run_metrics_server(config, *t.table, {lfd});
    }
    close(lfd);
    std::string ok = http_get(port, "/metrics");
    CHECK(ok.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(ok.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
    CHECK(ok.find("\nsplitpool_sessions_served_total 7\n") != std::string::npos);
    t.table->node(0).select_count = 9;
    CHECK(http_get(port, "/metrics").find("splitpool_node_select_total{node=\"0\"") != std::string::npos);
    CHECK(http_get(port, "/metrics?x=1").find("splitpool_node_select_total{node=\"0\",hostname=\"127.0.0.1\","
                                               "port=\"5432\"} 9\n") != std::string::npos);
    CHECK(http_get(port, "/").rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
    kill(pid, SIGTERM);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
