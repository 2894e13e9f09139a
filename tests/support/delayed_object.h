// A VMObject whose pages are produced by a worker thread after a delay —
// the shape of a file or a remote store, without either. A fault is answered
// Pending; the worker fills a staging page with the page's pattern (or
// fails it with -EIO when asked), posts the completion, and the handler
// thread that resumes the fault copies the staging page in. Proves that a
// fault can outlive its batch while the handlers serve other faults.
//
// The handler-side path allocates nothing: requests go through a fixed ring.
#pragma once

#include "memory/vm_object.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <sys/mman.h>
#include <thread>

namespace faultline::testing {

class DelayedObject final : public memory::VMObject {
public:
    static constexpr size_t kRing = 1024;

    static boost::intrusive_ptr<DelayedObject> create(size_t pages, std::chrono::milliseconds delay, size_t page_size = 4096)
    {
        return new DelayedObject(pages, delay, page_size);
    }
    ~DelayedObject() override
    {
        {
            std::lock_guard g(lock_);
            stopping_ = true;
        }
        ready_.notify_all();
        if (worker_.joinable())
            worker_.join();
        munmap(staging_, size());
    }

    // The byte at `offset` of object page `page`.
    static char pattern(size_t page, size_t offset) { return char((page * 31 + offset * 7 + 1) | 1); }

    const char* kind_name() const noexcept override { return "delayed"; }

    memory::Outcome handle_fault(const memory::FaultContext& ctx, memory::PageSink& sink) noexcept override
    {
        if (ctx.kind != uffd::FaultKind::Missing)
            return VMObject::handle_fault(ctx, sink);
        if (!ctx.token.valid() || !ctx.completions)
            return { memory::Resolution::Retry };
        {
            std::lock_guard g(lock_);
            if (count_ == kRing)
                return { memory::Resolution::Retry };
            ring_[(head_ + count_++) % kRing] = { ctx.token, ctx.object_page(), ctx.completions };
        }
        ready_.notify_one();
        return memory::Outcome::pending();
    }

    memory::Outcome resume_fault(const memory::FaultContext& ctx, memory::PageSink& sink, int64_t result) noexcept override
    {
        if (result < 0)
            return memory::Outcome::sigbus();
        const size_t page = ctx.object_page();
        uffd::FillResult r = sink.copy(ctx.page, staging_ + page * page_size(), page_size(), false);
        if (!r.ok())
            return memory::Outcome::from_failure(r);
        states_.populate(page, 1, memory::PageState::Present);
        return memory::Outcome::installed(memory::FillKind::Backing, r.pages);
    }

    void fail_page(size_t page)
    {
        std::lock_guard g(lock_);
        failing_.insert(page);
    }
    // Pages produced (each production is one completion).
    size_t produced() const { return produced_.load(); }
    size_t produced(size_t page) const
    {
        std::lock_guard g(lock_);
        return per_page_.count(page);
    }

private:
    struct Request {
        memory::PendingToken token;
        size_t page;
        memory::CompletionPort* port;
    };

    DelayedObject(size_t pages, std::chrono::milliseconds delay, size_t page_size)
        : VMObject(pages * page_size, page_size, std::move(*memory::PageStates::create(pages)))
        , delay_(delay)
    {
        staging_ = static_cast<char*>(mmap(nullptr, size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        worker_ = std::thread([this] { run(); });
    }

    void run()
    {
        std::unique_lock g(lock_);
        for (;;) {
            ready_.wait(g, [&] { return stopping_ || count_ > 0; });
            if (stopping_ && count_ == 0)
                return;
            Request r = ring_[head_];
            head_ = (head_ + 1) % kRing;
            --count_;
            const bool failing = failing_.count(r.page) != 0;
            g.unlock();
            std::this_thread::sleep_for(delay_);
            char* p = staging_ + r.page * page_size();
            for (size_t i = 0; i < page_size(); ++i)
                p[i] = pattern(r.page, i);
            g.lock();
            per_page_.insert(r.page);
            g.unlock();
            produced_.fetch_add(1);
            r.port->post(r.token, failing ? -EIO : 0);
            g.lock();
        }
    }

    std::chrono::milliseconds delay_;
    char* staging_ = nullptr;
    mutable std::mutex lock_;
    std::condition_variable ready_;
    Request ring_[kRing];
    size_t head_ = 0;
    size_t count_ = 0;
    bool stopping_ = false;
    std::set<size_t> failing_;
    std::multiset<size_t> per_page_;
    std::atomic<size_t> produced_ { 0 };
    std::thread worker_;
};

} // namespace faultline::testing
