// A growable byte buffer with read and write cursors, for incoming socket data.
#pragma once

#include <cstddef>
#include <memory>

namespace splitpool::io {

class Buffer {
public:
    const char* data() const { return buf_.get() + start_; }
    size_t size() const { return end_ - start_; }
    bool empty() const { return start_ == end_; }
    // Room for at least `min_space` bytes after the data; write there, then commit().
    char* prepare(size_t min_space);
    size_t space() const { return capacity_ - end_; }
    void commit(size_t n) { end_ += n; }
    void consume(size_t n);
    void append(const char* p, size_t n);
    void clear() { start_ = end_ = 0; }

private:
    // Not a std::vector<char>: its growth zero-fills, and every session's first read asks for 64 kB
    // (measured: two thirds of a pgbench -C session's user-space instructions were that memset).
    std::unique_ptr<char[]> buf_;
    size_t capacity_ = 0;
    size_t start_ = 0;
    size_t end_ = 0;
};

}  // namespace splitpool::io
