// Unit tests for the shared-memory status table: layout, versioning, cross-process visibility.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "shm/status_table.hpp"

using namespace splitpool::shm;

namespace {
// Fixed once per run, so a forked child names the same segment as its parent.
const std::string& test_name() {
    static const std::string name = "splitpool.unit." + std::to_string(getpid());
    return name;
}
}  // namespace

TEST_CASE("a fresh table has a valid header and zeroed slots") {
    std::string err;
    auto t = StatusTable::create(test_name(), 4, &err);
    REQUIRE(t);
    CHECK(t->header().magic == kMagic);
    CHECK(t->header().layout_version == kLayoutVersion);
    CHECK(t->num_children() == 4);
    CHECK(t->header().primary_node == -1);
    CHECK(t->child(3).pid == 0);
    CHECK(t->node(0).status == uint8_t(NodeStatus::Unused));
    Segment::remove(test_name());
}

TEST_CASE("another process sees node and child updates; open refuses a missing segment") {
    std::string err;
    auto t = StatusTable::create(test_name(), 2, &err);
    REQUIRE(t);
    t->set_num_nodes(2);
    t->set_node_text(1, "replica.example", 5433, "r1");
    pid_t pid = fork();
    if (pid == 0) {
        auto other = StatusTable::open(test_name(), nullptr);
        if (!other) _exit(2);
        other->reset_child(1, getpid());
        other->set_child_text(1, {"127.0.0.1:5000", "db", "alice", "app"});
        other->child(1).client_cancel_secret = 77;
        other->child(1).client_cancel_pid = 1234;
        other->node(1).select_count.fetch_add(5);
        bool text_ok = other->node_text(1).hostname == "replica.example" && other->node_text(1).port == 5433;
        _exit(text_ok ? 0 : 3);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(t->child(1).pid == pid);
    CHECK(t->child_text(1).user == "alice");
    CHECK(t->child_text(1).client_addr == "127.0.0.1:5000");
    CHECK(t->node(1).select_count == 5);
    CHECK(t->find_cancel_key(1234, 77) == 1);
    CHECK(t->find_cancel_key(1234, 78) == -1);  // the secret must match too
    t->reset_child(1, 0);
    CHECK(t->find_cancel_key(1234, 77) == -1);
    Segment::remove(test_name());
    CHECK_FALSE(StatusTable::open(test_name(), &err));
    CHECK(err.find("could not open shared memory segment") != std::string::npos);
}

TEST_CASE("a segment with another layout version is refused") {
    std::string err;
    auto t = StatusTable::create(test_name(), 1, &err);
    REQUIRE(t);
    t->header().layout_version = kLayoutVersion + 1;
    CHECK_FALSE(StatusTable::open(test_name(), &err));
    CHECK(err.find("another layout version") != std::string::npos);
    Segment::remove(test_name());
}

TEST_CASE("a writer killed mid-update cannot make readers spin forever") {
    std::string err;
    auto t = StatusTable::create(test_name(), 1, &err);
    REQUIRE(t);
    t->set_child_text(0, {"a", "b", "c", "d"});
    t->child(0).text_seq.fetch_add(1);  // as if the owner died between its two increments
    CHECK(t->child_text(0).user == "c");
    Segment::remove(test_name());
}

TEST_CASE("snapshot copies status, role and weight") {
    std::string err;
    auto t = StatusTable::create(test_name(), 1, &err);
    REQUIRE(t);
    t->set_num_nodes(3);
    t->node(2).weight = 0.5;
    t->node(2).role = uint8_t(NodeRole::Standby);
    t->set_node_status(2, NodeStatus::Up);
    t->header().primary_node = 0;
    NodeSnapshot s = t->snapshot();
    CHECK(s.num_nodes == 3);
    CHECK(s.primary == 0);
    CHECK(s.nodes[2].status == NodeStatus::Up);
    CHECK(s.nodes[2].role == NodeRole::Standby);
    CHECK(s.nodes[2].weight == 0.5);
    CHECK(t->node(2).status_changed_at > 0);
    Segment::remove(test_name());
}

TEST_CASE("recent writes: a table counts as written for the window, by bare name, across processes") {
    std::string err;
    auto t = StatusTable::create(test_name(), 2, &err);
    REQUIRE(t);
    const int64_t now = 5'000'000'000;  // beyond 2^32 ms: the stamps wrap and must still compare
    CHECK_FALSE(t->relation_written_within("orders", now, 1000));
    t->note_relation_written("orders", now, 1000);
    CHECK(t->relation_written_within("orders", now, 1000));
    CHECK(t->relation_written_within("ORDERS", now + 999, 1000));
    CHECK_FALSE(t->relation_written_within("orders", now + 1000, 1000));
    CHECK_FALSE(t->relation_written_within("order_lines", now, 1000));
    // A later write renews the entry; an earlier stamp arriving late does not move it back.
    t->note_relation_written("orders", now + 800, 1000);
    t->note_relation_written("orders", now + 100, 1000);
    CHECK(t->relation_written_within("orders", now + 1500, 1000));
    pid_t pid = fork();
    if (pid == 0) {
        auto other = StatusTable::open(test_name(), nullptr);
        if (other) other->note_relation_written("customers", now + 10, 1000);
        _exit(other ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(status == 0);
    CHECK(t->relation_written_within("customers", now + 20, 1000));
    Segment::remove(test_name());
}

TEST_CASE("recent writes: when the table is full every table counts as written for the window") {
    std::string err;
    auto t = StatusTable::create(test_name(), 1, &err);
    REQUIRE(t);
    const int64_t now = 1000;
    // Far more live entries than slots: some land beyond their home slot's probe range.
    for (int i = 0; i < kRecentWrites * 2; ++i) t->note_relation_written("t" + std::to_string(i), now, 60000);
    CHECK(t->header().recent_writes_full_until_ms.load() == now + 60000);
    CHECK(t->relation_written_within("never_written", now + 59999, 60000));
    CHECK_FALSE(t->relation_written_within("never_written", now + 60000, 60000));
    // Expired entries free their slots again.
    t->note_relation_written("fresh", now + 70000, 1000);
    CHECK(t->relation_written_within("fresh", now + 70000, 1000));
    CHECK_FALSE(t->relation_written_within("t1", now + 70000, 1000));
    Segment::remove(test_name());
}

TEST_CASE("session counts per node come from the child slots; a reaped child's session no longer counts") {
    std::string err;
    auto t = StatusTable::create(test_name(), 4, &err);
    REQUIRE(t);
    t->set_num_nodes(3);
    for (int slot = 0; slot < 3; ++slot) t->reset_child(slot, 100 + slot);  // slot 3: never started (pid 0)
    CHECK(t->child(0).load_balance_node == -1);
    t->child(0).load_balance_node = 1;
    t->child(1).load_balance_node = 1;
    t->child(2).load_balance_node = 2;
    NodeSnapshot s = t->snapshot();
    CHECK(s.nodes[0].sessions == -1);  // a plain snapshot does not count
    t->count_sessions(s);
    CHECK(s.nodes[0].sessions == 0);
    CHECK(s.nodes[1].sessions == 2);
    CHECK(s.nodes[2].sessions == 1);
    t->reset_child(1, 0);  // the parent reaped a child that died mid-session
    t->count_sessions(s);
    CHECK(s.nodes[1].sessions == 1);
    t->child(2).load_balance_node = -1;  // the session ended
    t->count_sessions(s);
    CHECK(s.nodes[2].sessions == 0);
    Segment::remove(test_name());
}
