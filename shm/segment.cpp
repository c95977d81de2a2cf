// Creates, opens and removes the named Boost.Interprocess shared-memory segment.
#include "shm/segment.hpp"

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <cstring>

namespace bip = boost::interprocess;

namespace splitpool::shm {

struct Segment::Impl {
    bip::shared_memory_object object;
    bip::mapped_region region;
};

Segment::Segment(std::string name, std::unique_ptr<Impl> impl) : name_(std::move(name)), impl_(std::move(impl)) {}
Segment::~Segment() = default;

void* Segment::data() const { return impl_->region.get_address(); }
size_t Segment::size() const { return impl_->region.get_size(); }

// Startup and tools may use exceptions (style rule 4): they are converted here, at the boundary.
std::unique_ptr<Segment> Segment::create(const std::string& name, size_t size, std::string* error) {
    try {
        // A segment left by a crashed earlier run is stale by now: the caller checked the pid file
        // and bound the listening port, so no live daemon owns this name.
        bip::shared_memory_object::remove(name.c_str());
        auto impl = std::make_unique<Impl>();
        bip::permissions owner_only(0600);
        impl->object = bip::shared_memory_object(bip::create_only, name.c_str(), bip::read_write, owner_only);
        impl->object.truncate(static_cast<bip::offset_t>(size));
        impl->region = bip::mapped_region(impl->object, bip::read_write);
        std::memset(impl->region.get_address(), 0, impl->region.get_size());
        return std::unique_ptr<Segment>(new Segment(name, std::move(impl)));
    } catch (const std::exception& e) {
        if (error) *error = std::string("could not create shared memory segment \"") + name + "\": " + e.what();
        return nullptr;
    }
}

std::unique_ptr<Segment> Segment::open(const std::string& name, std::string* error) {
    try {
        auto impl = std::make_unique<Impl>();
        impl->object = bip::shared_memory_object(bip::open_only, name.c_str(), bip::read_write);
        impl->region = bip::mapped_region(impl->object, bip::read_write);
        return std::unique_ptr<Segment>(new Segment(name, std::move(impl)));
    } catch (const std::exception& e) {
        if (error) *error = std::string("could not open shared memory segment \"") + name + "\": " + e.what();
        return nullptr;
    }
}

void Segment::remove(const std::string& name) { bip::shared_memory_object::remove(name.c_str()); }

std::string segment_name_for_port(int port) { return "splitpool." + std::to_string(port); }

}  // namespace splitpool::shm
