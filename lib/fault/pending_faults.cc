#include "fault/pending_faults.h"

#include <bit>
#include <unistd.h>

namespace faultline::fault {

PendingFaultTable::PendingFaultTable(size_t capacity)
    : capacity_(capacity)
    , slots_(new Slot[capacity])
    , free_list_(new uint32_t[capacity])
{
    // The index is kept at most half full, so probe sequences stay short.
    size_t index_size = std::bit_ceil(capacity * 2);
    index_mask_ = index_size - 1;
    index_.reset(new uint32_t[index_size]);
    for (size_t i = 0; i < index_size; ++i)
        index_[i] = kEmpty;
    for (size_t i = 0; i < capacity; ++i)
        free_list_[i] = uint32_t(capacity - 1 - i);
    free_count_ = capacity;
    page_shift_ = size_t(std::countr_zero(size_t(sysconf(_SC_PAGESIZE))));
}

size_t PendingFaultTable::home(uintptr_t page) const noexcept
{
    // Fibonacci hashing of the page number: neighbouring pages (the usual
    // case: a sequential toucher, fault-around neighbours) spread out.
    return size_t(((page >> page_shift_) * 0x9E3779B97F4A7C15ull) >> 20) & index_mask_;
}

size_t PendingFaultTable::find(uintptr_t page) const noexcept
{
    size_t pos = home(page);
    while (index_[pos] != kEmpty && slots_[index_[pos]].page != page)
        pos = (pos + 1) & index_mask_;
    return pos;
}

void PendingFaultTable::erase_from_index(size_t pos) noexcept
{
    // Backward-shift deletion: move later entries of the probe run back into
    // the hole when their home position allows it.
    index_[pos] = kEmpty;
    size_t next = (pos + 1) & index_mask_;
    while (index_[next] != kEmpty) {
        size_t want = home(slots_[index_[next]].page);
        // Can the entry at `next` move to `pos`? Only if `pos` lies
        // cyclically in [want, next).
        bool movable = pos <= next ? (want <= pos || want > next) : (want <= pos && want > next);
        if (movable) {
            index_[pos] = index_[next];
            index_[next] = kEmpty;
            pos = next;
        }
        next = (next + 1) & index_mask_;
    }
}

PendingFaultTable::Claim PendingFaultTable::claim(uintptr_t page) noexcept
{
    std::lock_guard guard(lock_);
    size_t pos = find(page);
    if (index_[pos] != kEmpty)
        return { ClaimStatus::Duplicate, {} };
    if (free_count_ == 0)
        return { ClaimStatus::Full, {} };
    uint32_t n = free_list_[--free_count_];
    Slot& slot = slots_[n];
    slot.page = page;
    slot.state = State::Claimed;
    slot.early = false;
    ++slot.generation;
    index_[pos] = n;
    return { ClaimStatus::Claimed, { n, slot.generation } };
}

PendingFaultTable::Slot* PendingFaultTable::slot_for(memory::PendingToken token, State expected) noexcept
{
    if (token.slot >= capacity_)
        return nullptr;
    Slot& slot = slots_[token.slot];
    if (slot.generation != token.generation || slot.state != expected)
        return nullptr;
    return &slot;
}

void PendingFaultTable::release(memory::PendingToken token) noexcept
{
    if (!token.valid())
        return;
    std::lock_guard guard(lock_);
    Slot* slot = slot_for(token, State::Claimed);
    if (!slot)
        slot = slot_for(token, State::Resuming);
    if (!slot)
        return;
    erase_from_index(find(slot->page));
    slot->state = State::Free;
    slot->parked = {};
    free_list_[free_count_++] = token.slot;
}

std::optional<int64_t> PendingFaultTable::park(memory::PendingToken token, const Parked& parked) noexcept
{
    std::lock_guard guard(lock_);
    Slot* slot = slot_for(token, State::Claimed);
    if (!slot)
        return std::nullopt;
    slot->parked = parked;
    if (slot->early) {
        slot->early = false;
        slot->state = State::Resuming;
        return slot->early_result;
    }
    slot->state = State::Parked;
    parked_.fetch_add(1, std::memory_order_acq_rel);
    return std::nullopt;
}

bool PendingFaultTable::take(memory::PendingToken token, Parked* out, int64_t result) noexcept
{
    std::lock_guard guard(lock_);
    if (Slot* slot = slot_for(token, State::Parked)) {
        slot->state = State::Resuming;
        *out = slot->parked;
        if (parked_.fetch_sub(1, std::memory_order_acq_rel) == 1)
            parked_.notify_all();
        return true;
    }
    // Not parked yet, or being resumed: the completion overtook the answer
    // that will park it. Keep it for that moment.
    Slot* slot = slot_for(token, State::Claimed);
    if (!slot)
        slot = slot_for(token, State::Resuming);
    if (slot) {
        slot->early = true;
        slot->early_result = result;
    }
    return false;
}

std::optional<int64_t> PendingFaultTable::repark(memory::PendingToken token) noexcept
{
    std::lock_guard guard(lock_);
    Slot* slot = slot_for(token, State::Resuming);
    if (!slot)
        return std::nullopt;
    if (slot->early) {
        slot->early = false;
        return slot->early_result;
    }
    slot->state = State::Parked;
    parked_.fetch_add(1, std::memory_order_acq_rel);
    return std::nullopt;
}

size_t PendingFaultTable::in_use() const noexcept
{
    std::lock_guard guard(lock_);
    return capacity_ - free_count_;
}

void PendingFaultTable::wait_until_none_parked() const noexcept
{
    for (size_t n = parked_.load(std::memory_order_acquire); n != 0; n = parked_.load(std::memory_order_acquire))
        parked_.wait(n);
}

} // namespace faultline::fault
