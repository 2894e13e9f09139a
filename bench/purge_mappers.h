// bench/purge_mappers.h — the two sides of the purgeable-memory cases: a
// faultline purgeable region, and native anonymous memory, each prepared
// (untimed) by the case before its timed loop.
//
// As Mapper (bench.h): map() hands out a fresh, prepared region; unmap()
// gives it back.
#pragma once

#include "bench.h"

#include <faultline/runtime.h>

#include <functional>
#include <memory>

namespace bench {

// A region of Runtime::allocate_purgeable from a Runtime created for the
// repetition (as the other cases do, so the median samples the scheduler's
// placements of the handler and purge threads).
class PurgeableMapper final : public Mapper {
public:
    PurgeableMapper(faultline::Config config, std::function<void(faultline::Runtime&, char*, size_t)> prepare)
        : config_(std::move(config)), prepare_(std::move(prepare))
    {
    }
    std::string name() const override { return "faultline"; }
    char* map(size_t bytes, bool sparse) override;
    void unmap(char* base, size_t bytes) override;
    faultline::Runtime& runtime() { return *runtime_; }

private:
    faultline::Config config_;
    std::function<void(faultline::Runtime&, char*, size_t)> prepare_;
    std::unique_ptr<faultline::Runtime> runtime_;
};

// mmap(MAP_PRIVATE | MAP_ANONYMOUS), prepared the same way.
class PreparedNativeMapper final : public Mapper {
public:
    explicit PreparedNativeMapper(std::function<void(char*, size_t)> prepare) : prepare_(std::move(prepare)) {}
    std::string name() const override { return "native-anon"; }
    char* map(size_t bytes, bool sparse) override;
    void unmap(char* base, size_t bytes) override;

private:
    std::function<void(char*, size_t)> prepare_;
};

} // namespace bench
