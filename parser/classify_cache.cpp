// Bounded LRU cache of classifications: a repeated statement is parsed once.
#include "parser/classify_cache.hpp"

#include "parser/cache_key.hpp"

namespace splitpool::parser {

std::shared_ptr<const Classification> ClassificationCache::lookup_shared(std::string_view sql) {
    cache_key(sql, &key_);
    auto it = map_.find(key_);
    if (it != map_.end()) {
        ++hits_;
        lru_.splice(lru_.begin(), lru_, it->second);
        return it->second->value;
    }
    ++misses_;
    evict_to(capacity_ - 1);
    lru_.push_front(Entry{key_, std::make_shared<const Classification>(classify(sql))});
    map_.emplace(lru_.front().key, lru_.begin());
    return lru_.front().value;
}

void ClassificationCache::set_capacity(size_t capacity) {
    capacity_ = capacity ? capacity : 1;
    evict_to(capacity_);
}

void ClassificationCache::clear() {
    map_.clear();
    lru_.clear();
}

double ClassificationCache::hit_ratio() const {
    uint64_t total = hits_ + misses_;
    return total ? 100.0 * static_cast<double>(hits_) / static_cast<double>(total) : 0.0;
}

void ClassificationCache::evict_to(size_t n) {
    while (map_.size() > n) {
        map_.erase(lru_.back().key);
        lru_.pop_back();
    }
}

}  // namespace splitpool::parser
