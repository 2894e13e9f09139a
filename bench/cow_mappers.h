// bench/cow_mappers.h — the faultline side of the copy-on-write cases: a
// clonable region (RegionFlags::Clonable) from a Runtime created for the
// repetition, prepared (untimed) by the case. The baseline side is
// PreparedNativeMapper (purge_mappers.h): plain anonymous memory a fork()
// copies.
#pragma once

#include "bench.h"

#include <faultline/runtime.h>

#include <functional>
#include <memory>

namespace bench {

class ClonableMapper final : public Mapper {
public:
    ClonableMapper(faultline::Config config, std::function<void(faultline::Runtime&, char*, size_t)> prepare)
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

} // namespace bench
