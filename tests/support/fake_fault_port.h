// A FaultPort that records every call instead of reaching the kernel, so
// objects and the dispatcher are tested without userfaultfd. Pages it
// "installs" are remembered; a fill over a page already installed answers
// like the kernel (EEXIST: the page is skipped and the fill goes on).
// Failures can be scripted per verb.
#pragma once

#include "fault/fault_port.h"

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace faultline::testing {

class FakeFaultPort final : public fault::FaultPort {
public:
    struct Call {
        std::string verb; // "zero", "copy", "continue", "wp", "unwp", "wake", "sigbus"
        uintptr_t start;
        size_t len;
        int detail = 0; // ZeroFill for "zero", write_protect flag for copy/continue, tid for sigbus
    };

    explicit FakeFaultPort(size_t page = 4096)
        : page_(page)
    {
    }

    size_t page_size() const noexcept override { return page_; }

    uffd::FillResult zero(uintptr_t start, size_t len, uffd::ZeroFill how) noexcept override
    {
        calls.push_back({ "zero", start, len, int(how) });
        return fill(start, len, fail_zero);
    }
    uffd::FillResult copy(uintptr_t dst, const void*, size_t len, bool wp) noexcept override
    {
        calls.push_back({ "copy", dst, len, wp });
        return fill(dst, len, fail_copy);
    }
    uffd::FillResult map_cached(uintptr_t dst, size_t len, bool wp) noexcept override
    {
        calls.push_back({ "continue", dst, len, wp });
        return fill(dst, len, fail_continue);
    }
    uffd::FillResult write_protect(uintptr_t start, size_t len, bool protect) noexcept override
    {
        calls.push_back({ protect ? "wp" : "unwp", start, len, 0 });
        uffd::FillResult r;
        if (fail_wp) {
            r.status = fail_wp_status;
            r.error = fail_wp;
        }
        return r;
    }
    long wake(uintptr_t start, size_t len) noexcept override
    {
        calls.push_back({ "wake", start, len, 0 });
        for (uintptr_t p = start; p < start + len; p += page_)
            woken.insert(p);
        return wake_result;
    }
    bool raise_sigbus(uintptr_t page, int tid, Access) noexcept override
    {
        calls.push_back({ "sigbus", page, page_, tid });
        sigbus.insert(page);
        return true;
    }

    size_t count(const std::string& verb) const
    {
        size_t n = 0;
        for (auto& c : calls)
            n += c.verb == verb;
        return n;
    }
    bool is_installed(uintptr_t page) const { return installed.count(page) != 0; }

    std::vector<Call> calls;
    std::set<uintptr_t> installed;
    std::set<uintptr_t> woken;
    std::set<uintptr_t> sigbus;
    // A failure to report from the next fills of that verb: the errno and
    // the status (0 = succeed). `fail_*_at` restricts it to fills covering
    // that address (0 = any).
    struct Failure {
        int error = 0;
        uffd::FillStatus status = uffd::FillStatus::Failed;
        uintptr_t at = 0;
    };
    Failure fail_zero, fail_copy, fail_continue;
    int fail_wp = 0;
    uffd::FillStatus fail_wp_status = uffd::FillStatus::Failed;
    long wake_result = 0;

private:
    uffd::FillResult fill(uintptr_t start, size_t len, const Failure& failure)
    {
        uffd::FillResult r;
        if (failure.error && (failure.at == 0 || (failure.at >= start && failure.at < start + len))) {
            r.status = failure.status;
            r.error = failure.error;
            return r;
        }
        for (uintptr_t p = start; p < start + len; p += page_)
            if (installed.insert(p).second)
                ++r.pages;
        return r;
    }

    size_t page_;
};

} // namespace faultline::testing
