// A growable byte buffer with read and write cursors, for incoming socket data.
#include "daemon/io/buffer.hpp"

#include <cstring>

namespace splitpool::io {

char* Buffer::prepare(size_t min_space) {
    if (buf_.size() - end_ >= min_space) return buf_.data() + end_;
    // Slide the unread bytes to the front before growing: most reads leave little behind.
    if (start_ > 0) {
        size_t n = size();
        std::memmove(buf_.data(), buf_.data() + start_, n);
        start_ = 0;
        end_ = n;
    }
    if (buf_.size() - end_ < min_space) buf_.resize(end_ + min_space);
    return buf_.data() + end_;
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
