// Random bytes for secrets: getrandom(2), else OpenSSL's RAND_bytes.
#include "daemon/secure_random.hpp"

#include <openssl/rand.h>
#include <sys/random.h>

namespace splitpool::daemon {

bool secure_random(void* out, size_t n) {
    if (getrandom(out, n, 0) == ssize_t(n)) return true;
    return RAND_bytes(static_cast<unsigned char*>(out), static_cast<int>(n)) == 1;
}

}  // namespace splitpool::daemon
