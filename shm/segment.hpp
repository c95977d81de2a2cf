// Creates, opens and removes the named Boost.Interprocess shared-memory segment.
#pragma once

#include <memory>
#include <string>

namespace splitpool::shm {

// A mapping of the segment. Movable; unmaps on destruction (it never removes the name).
class Segment {
public:
    // Parent: removes a stale segment of the same name, creates a fresh zeroed one.
    static std::unique_ptr<Segment> create(const std::string& name, size_t size, std::string* error);
    // Tools and tests: maps an existing segment read-write.
    static std::unique_ptr<Segment> open(const std::string& name, std::string* error);
    static void remove(const std::string& name);

    ~Segment();
    void* data() const;
    size_t size() const;
    const std::string& name() const { return name_; }

private:
    struct Impl;
    Segment(std::string name, std::unique_ptr<Impl> impl);
    std::string name_;
    std::unique_ptr<Impl> impl_;
};

// The segment name for a daemon listening on `port` (one daemon per port on a machine).
std::string segment_name_for_port(int port);

}  // namespace splitpool::shm
