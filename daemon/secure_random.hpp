// Random bytes for secrets (cancel keys, digest salts, generator seeds).
#pragma once

#include <cstddef>

namespace splitpool::daemon {

// getrandom(2), with OpenSSL's RAND_bytes as the fallback; false when both fail. getrandom first:
// in a forked child RAND_bytes reseeds on first use, dirtying its state pages and mapping more of
// libcrypto, and each later call costs ~6,600 instructions and a getpid (its fork check).
bool secure_random(void* out, size_t n);

}  // namespace splitpool::daemon
