// bench/mappers.h — the three kinds of memory the cases compare.
#pragma once

#include "bench.h"

#include <faultline/runtime.h>

#include <memory>
#include <thread>

namespace bench {

// Regions from a faultline Runtime (its configuration decides fault-around
// and the number of handler threads).
class FaultlineMapper final : public Mapper {
public:
    // Every region comes from `runtime`, whose handler threads live as long
    // as it does (and keep the CPU placement they were started with).
    explicit FaultlineMapper(faultline::Runtime& runtime) : runtime_(&runtime) {}
    // Every region comes from a Runtime created for it (untimed) and
    // destroyed with it. The scheduler places a thread once and then mostly
    // keeps it where it is, so with one long-lived runtime every repetition
    // would inherit one placement decision; a fresh runtime per repetition
    // lets the median sample the scheduler's choices instead.
    explicit FaultlineMapper(const faultline::Config& config) : config_(config), fresh_(true) {}
    std::string name() const override { return "faultline"; }
    char* map(size_t bytes, bool sparse) override;
    void unmap(char* base, size_t bytes) override;
    const faultline::Config& config() const { return runtime_ ? runtime_->config() : config_; }

private:
    faultline::Runtime* runtime_ = nullptr;
    faultline::Config config_;
    bool fresh_ = false;
    std::unique_ptr<faultline::Runtime> owned_;
};

// Creates a Runtime or exits with the library's explanation (usually how to
// make userfaultfd available).
std::unique_ptr<faultline::Runtime> make_runtime(const faultline::Config& config);

// Plain MAP_PRIVATE|MAP_ANONYMOUS memory: the kernel's own fault path, which
// is what a program gets without faultline.
class NativeMapper final : public Mapper {
public:
    std::string name() const override { return "native-anon"; }
    char* map(size_t bytes, bool sparse) override;
    void unmap(char* base, size_t bytes) override;
};

// Anonymous memory registered with a userfaultfd of its own, served by the
// smallest handler that can work: one thread doing poll + read + UFFDIO_COPY
// of one zero page. Nothing can serve a userfaultfd fault with less work, so
// it is the physical floor for faultline's fault path (baseline_uffd.cc).
class MinimalUffdMapper final : public Mapper {
public:
    MinimalUffdMapper();
    ~MinimalUffdMapper() override;
    std::string name() const override { return "minimal-uffd-handler"; }
    char* map(size_t bytes, bool sparse) override;
    void unmap(char* base, size_t bytes) override;

private:
    void serve() noexcept;

    int uffd_ = -1;
    int stop_fd_ = -1;
    char* zero_page_ = nullptr;
    std::thread thread_;
};

} // namespace bench
