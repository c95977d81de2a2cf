// A growable byte buffer with read and write cursors, for incoming socket data.
#include "daemon/io/buffer.hpp"

#include <algorithm>
#include <cstring>

namespace splitpool::io {

char* Buffer::prepare(size_t min_space) {
    if (capacity_ - end_ >= min_space) return buf_.get() + end_;
    // Slide the unread bytes to the front before growing: most reads leave little behind.
    size_t n = size();
    if (start_ > 0) {
        std::memmove(buf_.get(), buf_.get() + start_, n);
        start_ = 0;
        end_ = n;
    }
    if (capacity_ - end_ < min_space) {
        // Doubling, as std::vector did: a large message read in 64 kB chunks is copied a few times
        // in all, not once per chunk.
        size_t want = std::max(end_ + min_space, 2 * capacity_);
        auto grown = std::make_unique_for_overwrite<char[]>(want);
        if (n > 0) std::memcpy(grown.get(), buf_.get(), n);
        buf_ = std::move(grown);
        capacity_ = want;
    }
    return buf_.get() + end_;
}

void Buffer::consume(size_t n) {
    start_ += n;
    if (start_ >= end_) start_ = end_ = 0;
}

void Buffer::append(const char* p, size_t n) {
    std::memcpy(prepare(n), p, n);
    commit(n);
}

}  // namespace splitpool::io
