// A child's cache of logged-in backend connection sets, one set per (user, database, startup
// parameters), kept between clients so the next matching client skips connecting and logging in.
#include "daemon/backend_pool.hpp"

#include <openssl/evp.h>
#include <poll.h>

#include <algorithm>

namespace splitpool::daemon {

int BackendSet::open_count() const {
    return static_cast<int>(std::count_if(nodes.begin(), nodes.end(), [](const auto& c) { return c != nullptr; }));
}

bool BackendSet::usable() const {
    std::vector<pollfd> fds;  // one poll for the whole set
    for (const auto& c : nodes) {
        if (!c) continue;
        if (!c->in.empty()) return false;
        fds.push_back({c->fd, POLLIN, 0});
    }
    // An idle connection has nothing to say: readable means EOF or a FATAL before closing.
    return !fds.empty() && poll(fds.data(), nfds_t(fds.size()), 0) == 0;
}

std::unique_ptr<BackendSet> BackendPool::take(const std::string& key) {
    auto it = std::find_if(sets_.begin(), sets_.end(), [&](const auto& s) { return s->key == key; });
    if (it == sets_.end()) return nullptr;
    auto set = std::move(*it);
    sets_.erase(it);
    return set;
}

void BackendPool::put(std::unique_ptr<BackendSet> set) {
    if (max_sets_ <= 0 || !set || set->open_count() == 0) return;
    while (int(sets_.size()) >= max_sets_) {
        auto oldest = std::min_element(sets_.begin(), sets_.end(),
                                       [](const auto& a, const auto& b) { return a->last_used_ms < b->last_used_ms; });
        sets_.erase(oldest);
    }
    sets_.push_back(std::move(set));
}

void BackendPool::expire(int64_t now_ms, int life_time_s) {
    if (life_time_s <= 0) return;
    std::erase_if(sets_, [&](const auto& s) { return now_ms - s->last_used_ms >= int64_t(life_time_s) * 1000; });
}

size_t BackendPool::drop_using(const std::function<bool(int node)>& gone) {
    return std::erase_if(sets_, [&](const auto& s) {
        for (size_t i = 0; i < s->nodes.size(); ++i)
            if (s->nodes[i] && gone(int(i))) return true;
        return false;
    });
}

std::string password_digest(const std::string& password, const std::string& salt_source) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    std::string input = salt_source + '\0' + password;
    EVP_Digest(input.data(), input.size(), md, &len, EVP_sha256(), nullptr);
    OPENSSL_cleanse(input.data(), input.size());
    return std::string(reinterpret_cast<char*>(md), len);
}

}  // namespace splitpool::daemon
