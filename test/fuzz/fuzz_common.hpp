// Helpers shared by the libFuzzer targets in test/fuzz: invariant checks that abort (so libFuzzer
// records the input), a silenced logger, and per-process scratch folders and status tables.
#pragma once

#include <ftw.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "daemon/log.hpp"
#include "shm/segment.hpp"
#include "shm/status_table.hpp"

namespace splitpool::fuzz {

// Inputs above this are skipped: every parser here reads files or packets far smaller, and the
// quadratic corners (edit distances of unknown keys, say) are not what the fuzzers are after.
constexpr size_t kMaxInput = 64 * 1024;

[[noreturn]] inline void check_failed(const char* expr, const char* file, int line, const std::string& detail) {
    fprintf(stderr, "%s:%d: invariant failed: %s%s%s\n", file, line, expr, detail.empty() ? "" : ": ",
            detail.c_str());
    abort();
}

// An invariant of the code under test: aborts with the expression, so the input is kept as a crash.
#define FUZZ_CHECK(cond, ...)                                                                     \
    do {                                                                                          \
        if (!(cond)) ::splitpool::fuzz::check_failed(#cond, __FILE__, __LINE__, std::string(__VA_ARGS__)); \
    } while (0)

// Nothing reaches stderr: the targets run millions of inputs and the daemon logs some at LOG level.
inline void quiet_logging() {
    daemon::LogOptions options;
    options.min_level = daemon::LogLevel::Panic;
    options.to_stderr = false;
    options.to_syslog = false;
    daemon::log_configure(options);
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

// A folder for this process (tmpfs /dev/shm when there is one: rewriting a file on ext4 forces a
// flush at close), removed at exit; a crash may leave it behind, it is small.
class ScratchDir {
public:
    explicit ScratchDir(const char* tag) {
        std::string base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        std::string tmpl = base + "/splitpool-fuzz-" + tag + "-XXXXXX";
        if (mkdtemp(tmpl.data()) == nullptr) {
            perror("mkdtemp");
            abort();
        }
        path_ = tmpl;
    }
    ~ScratchDir() {
        nftw(
            path_.c_str(), [](const char* p, const struct stat*, int, FTW*) { return ::remove(p); }, 16,
            FTW_DEPTH | FTW_PHYS);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;

    const std::string& path() const { return path_; }
    std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }
    // Writes (or replaces) a file in the folder and returns its path.
    std::string write(std::string_view name, std::string_view text) const {
        std::string p = file(name);
        FILE* f = fopen(p.c_str(), "wb");
        if (f == nullptr || fwrite(text.data(), 1, text.size(), f) != text.size() || fclose(f) != 0) {
            perror(p.c_str());
            abort();
        }
        return p;
    }

private:
    std::string path_;
};

// A file in memory that APIs taking a path can open as /proc/self/fd/<n>; rewritten per input.
class MemFile {
public:
    explicit MemFile(const char* name) : fd_(memfd_create(name, MFD_CLOEXEC)) {
        if (fd_ < 0) {
            perror("memfd_create");
            abort();
        }
        path_ = "/proc/self/fd/" + std::to_string(fd_);
    }
    ~MemFile() { close(fd_); }
    MemFile(const MemFile&) = delete;
    MemFile& operator=(const MemFile&) = delete;

    const std::string& set(std::string_view text) {
        if (ftruncate(fd_, 0) != 0 || pwrite(fd_, text.data(), text.size(), 0) != ssize_t(text.size())) {
            perror("memfd write");
            abort();
        }
        return path_;
    }

private:
    int fd_;
    std::string path_;
};

// A status table of its own for this process. The segment's name is removed at once: the mapping
// stays valid, and nothing is left in /dev/shm however the process ends.
inline std::unique_ptr<shm::StatusTable> private_status_table(const char* tag, uint32_t children) {
    std::string name = std::string("splitpool.fuzz.") + tag + "." + std::to_string(getpid());
    std::string error;
    auto table = shm::StatusTable::create(name, children, &error);
    if (!table) {
        fprintf(stderr, "%s\n", error.c_str());
        abort();
    }
    shm::Segment::remove(name);
    return table;
}

}  // namespace splitpool::fuzz
