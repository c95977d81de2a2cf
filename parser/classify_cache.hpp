// Bounded LRU cache of classifications keyed by cache_key(), with hit/miss counters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "parser/classify.hpp"

namespace splitpool::parser {

class ClassificationCache {
public:
    static constexpr size_t kDefaultCapacity = 1024;
    // Bytes of keys the cache holds at most, whatever the entry count: 1024 entries of megabyte
    // statements would otherwise keep a gigabyte in every child. A statement whose key alone is
    // above a sixteenth of it is classified each time and not kept.
    static constexpr size_t kMaxKeyBytes = size_t(4) << 20;

    explicit ClassificationCache(size_t capacity = kDefaultCapacity) : capacity_(capacity ? capacity : 1) {}
    ClassificationCache(const ClassificationCache&) = delete;
    ClassificationCache& operator=(const ClassificationCache&) = delete;

    // The classification of `sql`: from the cache when a statement with the same key was seen, else
    // parsed and remembered (evicting the least recently used entry when full). The reference stays
    // valid until the next call that may evict it (lookup_or_classify, set_capacity, clear).
    const Classification& lookup_or_classify(std::string_view sql) { return *lookup_shared(sql); }
    // The same, shared: what a session keeps for a prepared statement outlives the cache entry.
    std::shared_ptr<const Classification> lookup_shared(std::string_view sql);

    // Shrinking evicts the least recently used entries. 0 is taken as 1.
    void set_capacity(size_t capacity);
    void clear();

    size_t size() const { return map_.size(); }
    size_t key_bytes() const { return key_bytes_; }
    size_t capacity() const { return capacity_; }
    uint64_t hits() const { return hits_; }
    uint64_t misses() const { return misses_; }
    // Percentage of lookups answered from the cache (0 before the first lookup).
    double hit_ratio() const;

private:
    struct Entry {
        std::string key;
        std::shared_ptr<const Classification> value;
    };
    using List = std::list<Entry>;

    void evict_to(size_t n, size_t bytes = kMaxKeyBytes);  // to n entries and `bytes` of keys

    size_t capacity_;
    size_t key_bytes_ = 0;  // sum of the entries' key sizes
    List lru_;  // front = most recently used
    std::unordered_map<std::string_view, List::iterator> map_;  // views into Entry::key
    std::string key_;  // scratch: reused so a hit allocates nothing
    uint64_t hits_ = 0;
    uint64_t misses_ = 0;
};

}  // namespace splitpool::parser
