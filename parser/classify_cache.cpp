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
    auto value = std::make_shared<const Classification>(classify(sql));
    if (key_.size() > kMaxKeyBytes / 16) {
        std::string().swap(key_);  // the scratch key does not keep a huge statement's size either
        return value;
    }
    evict_to(capacity_ - 1, kMaxKeyBytes - key_.size());
    lru_.push_front(Entry{key_, std::move(value)});
    map_.emplace(lru_.front().key, lru_.begin());
    key_bytes_ += key_.size();
    return lru_.front().value;
}

void ClassificationCache::set_capacity(size_t capacity) {
    capacity_ = capacity ? capacity : 1;
    evict_to(capacity_);
}

void ClassificationCache::clear() {
    map_.clear();
    lru_.clear();
    key_bytes_ = 0;
}

double ClassificationCache::hit_ratio() const {
    uint64_t total = hits_ + misses_;
    return total ? 100.0 * static_cast<double>(hits_) / static_cast<double>(total) : 0.0;
}

void ClassificationCache::evict_to(size_t n, size_t bytes) {
    while (map_.size() > n || (key_bytes_ > bytes && !lru_.empty())) {
        key_bytes_ -= lru_.back().key.size();
        map_.erase(lru_.back().key);
        lru_.pop_back();
    }
}

}  // namespace splitpool::parser
