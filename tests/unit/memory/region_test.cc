// Region: creation against its object, pieces (splits), the W^X history in
// check_protect, name validation and the in-flight fault count.
#include "memory/objects/anonymous_vm_object.h"
#include "memory/region.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using faultline::Access;
using faultline::RegionFlags;
using faultline::memory::AnonymousVMObject;
using faultline::memory::Range;
using faultline::memory::Region;
using faultline::memory::VMObject;

namespace {

constexpr size_t kPage = 4096;
constexpr uintptr_t kBase = 0x50000000;

boost::intrusive_ptr<VMObject> make_object(size_t size)
{
    auto o = AnonymousVMObject::try_create_with_size(size, kPage);
    EXPECT_TRUE(o) << (o ? "" : o.error().message());
    return o ? boost::intrusive_ptr<VMObject>(*o) : nullptr;
}

Region::Params params(Range range, boost::intrusive_ptr<VMObject> object, Access access = Access::ReadWrite,
    Access max = Access::ReadWriteExecute)
{
    Region::Params p;
    p.range = range;
    p.object = std::move(object);
    p.name = "test";
    p.access = access;
    p.max_access = max;
    return p;
}

std::unique_ptr<Region> make_region(Access access, Access max = Access::ReadWriteExecute,
    RegionFlags flags = RegionFlags::None, size_t pages = 4)
{
    auto p = params({ kBase, pages * kPage }, make_object(pages * kPage), access, max);
    p.flags = flags;
    auto r = Region::try_create(std::move(p));
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? std::move(*r) : nullptr;
}

template <typename T>
int error_of(const faultline::Result<T>& r)
{
    return r ? 0 : r.error().code();
}

} // namespace

// --- creation ---------------------------------------------------------------

TEST(Region, TryCreateKeepsEverything)
{
    auto object = make_object(8 * kPage);
    Region::Params p;
    p.range = { kBase, 4 * kPage };
    p.object = object;
    p.object_offset = 2 * kPage;
    p.name = "heap";
    p.access = Access::Read;
    p.max_access = Access::ReadWrite;
    p.flags = RegionFlags::Stack | RegionFlags::NoReserve;
    p.guard_below = kPage;
    p.committed = true;
    auto r = Region::try_create(std::move(p));
    ASSERT_TRUE(r) << r.error().message();
    Region& region = **r;
    EXPECT_EQ(region.base(), kBase);
    EXPECT_EQ(region.size(), 4 * kPage);
    EXPECT_EQ(region.end(), kBase + 4 * kPage);
    EXPECT_EQ(region.range().base, kBase);
    EXPECT_EQ(region.range().size, 4 * kPage);
    EXPECT_EQ(&region.object(), object.get());
    EXPECT_EQ(region.object_ptr().get(), object.get());
    EXPECT_EQ(region.object_offset(), 2 * kPage);
    EXPECT_EQ(region.name(), "heap");
    EXPECT_EQ(region.access(), Access::Read);
    EXPECT_EQ(region.max_access(), Access::ReadWrite);
    EXPECT_EQ(region.flags(), RegionFlags::Stack | RegionFlags::NoReserve);
    EXPECT_TRUE(region.is_stack());
    EXPECT_FALSE(region.is_immutable());
    EXPECT_TRUE(region.is_committed());
    EXPECT_EQ(region.guard_below(), kPage);
    EXPECT_EQ(region.reserved_range().base, kBase - kPage);
    EXPECT_EQ(region.reserved_range().size, 5 * kPage);
    EXPECT_FALSE(region.has_been_writable());
    EXPECT_FALSE(region.has_been_executable());
    EXPECT_EQ(region.faults_in_flight(), 0u);
    EXPECT_EQ(region.zero_faults(), 0u);
    EXPECT_EQ(region.pages_installed(), 0u);
    // The region holds a reference to its object.
    EXPECT_EQ(object->use_count(), 2);
    r->reset();
    EXPECT_EQ(object->use_count(), 1);
}

TEST(Region, ContainsItsPagesOnly)
{
    auto region = make_region(Access::Read);
    ASSERT_TRUE(region);
    EXPECT_FALSE(region->contains(kBase - 1));
    EXPECT_TRUE(region->contains(kBase));
    EXPECT_TRUE(region->contains(kBase + 4 * kPage - 1));
    EXPECT_FALSE(region->contains(kBase + 4 * kPage));
}

TEST(Region, InitialAccessStartsTheHistory)
{
    auto rw = make_region(Access::ReadWrite);
    ASSERT_TRUE(rw);
    EXPECT_TRUE(rw->has_been_writable());
    EXPECT_FALSE(rw->has_been_executable());
    auto rx = make_region(Access::ReadExecute);
    ASSERT_TRUE(rx);
    EXPECT_FALSE(rx->has_been_writable());
    EXPECT_TRUE(rx->has_been_executable());
    auto none = make_region(Access::None);
    ASSERT_TRUE(none);
    EXPECT_FALSE(none->has_been_writable());
    EXPECT_FALSE(none->has_been_executable());
}

TEST(Region, TryCreateNeedsAnObject)
{
    auto r = Region::try_create(params({ kBase, kPage }, nullptr));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EINVAL);
}

TEST(Region, TryCreateMustStayInsideTheObject)
{
    auto object = make_object(4 * kPage);
    ASSERT_TRUE(object);
    // Exactly the object, and exactly its tail: fine.
    EXPECT_TRUE(Region::try_create(params({ kBase, 4 * kPage }, object)));
    {
        auto p = params({ kBase, kPage }, object);
        p.object_offset = 3 * kPage;
        EXPECT_TRUE(Region::try_create(std::move(p)));
    }
    // Too large.
    EXPECT_EQ(error_of(Region::try_create(params({ kBase, 5 * kPage }, object))), EINVAL);
    {
        auto p = params({ kBase, 2 * kPage }, object);
        p.object_offset = 3 * kPage;
        EXPECT_EQ(error_of(Region::try_create(std::move(p))), EINVAL);
    }
    {
        auto p = params({ kBase, kPage }, object);
        p.object_offset = 5 * kPage;
        EXPECT_EQ(error_of(Region::try_create(std::move(p))), EINVAL);
    }
    {
        // offset + size wraps around.
        auto p = params({ kBase, 2 * kPage }, object);
        p.object_offset = size_t(0) - kPage;
        EXPECT_EQ(error_of(Region::try_create(std::move(p))), EINVAL);
    }
    {
        auto p = params({ kBase, size_t(0) - kPage }, object);
        p.object_offset = 2 * kPage;
        EXPECT_EQ(error_of(Region::try_create(std::move(p))), EINVAL);
    }
    EXPECT_EQ(object->use_count(), 1) << "a refused region must not keep the object";
}

// --- pieces -----------------------------------------------------------------

TEST(Region, PieceShiftsTheObjectOffset)
{
    auto object = make_object(16 * kPage);
    auto p = params({ kBase, 8 * kPage }, object, Access::Read, Access::ReadWrite);
    p.object_offset = 4 * kPage;
    p.name = "piece";
    p.flags = RegionFlags::Shared | RegionFlags::NoReserve;
    p.committed = true;
    auto whole = Region::try_create(std::move(p));
    ASSERT_TRUE(whole);

    auto mid = (*whole)->try_create_piece(kBase + 3 * kPage, 2 * kPage);
    ASSERT_TRUE(mid) << mid.error().message();
    EXPECT_EQ((*mid)->base(), kBase + 3 * kPage);
    EXPECT_EQ((*mid)->size(), 2 * kPage);
    EXPECT_EQ((*mid)->object_offset(), 7 * kPage);
    EXPECT_EQ(&(*mid)->object(), object.get());
    EXPECT_EQ((*mid)->name(), "piece");
    EXPECT_EQ((*mid)->access(), Access::Read);
    EXPECT_EQ((*mid)->max_access(), Access::ReadWrite);
    EXPECT_EQ((*mid)->flags(), RegionFlags::Shared | RegionFlags::NoReserve);
    EXPECT_TRUE((*mid)->is_committed());
    EXPECT_EQ((*mid)->guard_below(), 0u);

    auto top = (*whole)->try_create_piece(kBase + 5 * kPage, 3 * kPage);
    ASSERT_TRUE(top);
    EXPECT_EQ((*top)->object_offset(), 9 * kPage);
    EXPECT_EQ((*top)->end(), kBase + 8 * kPage);

    auto bottom = (*whole)->try_create_piece(kBase, kPage);
    ASSERT_TRUE(bottom);
    EXPECT_EQ((*bottom)->object_offset(), 4 * kPage);

    // A piece of a piece.
    auto sub = (*top)->try_create_piece(kBase + 7 * kPage, kPage);
    ASSERT_TRUE(sub);
    EXPECT_EQ((*sub)->object_offset(), 11 * kPage);

    // Same range as the whole.
    auto same = (*whole)->try_create_piece(kBase, 8 * kPage);
    ASSERT_TRUE(same);
    EXPECT_EQ((*same)->object_offset(), 4 * kPage);
    EXPECT_EQ((*same)->size(), 8 * kPage);
}

TEST(Region, GuardPageStaysWithTheBottomPiece)
{
    auto p = params({ kBase, 8 * kPage }, make_object(8 * kPage));
    p.flags = RegionFlags::Stack;
    p.guard_below = kPage;
    auto stack = Region::try_create(std::move(p));
    ASSERT_TRUE(stack);

    auto bottom = (*stack)->try_create_piece(kBase, 2 * kPage);
    auto top = (*stack)->try_create_piece(kBase + 2 * kPage, 6 * kPage);
    ASSERT_TRUE(bottom && top);
    EXPECT_EQ((*bottom)->guard_below(), kPage);
    EXPECT_EQ((*bottom)->reserved_range().base, kBase - kPage);
    EXPECT_EQ((*bottom)->reserved_range().size, 3 * kPage);
    EXPECT_EQ((*top)->guard_below(), 0u);
    EXPECT_EQ((*top)->reserved_range().base, kBase + 2 * kPage);
    EXPECT_EQ((*top)->reserved_range().size, 6 * kPage);
    EXPECT_TRUE((*top)->is_stack());
    // The reserved ranges tile the original reserved range.
    EXPECT_EQ((*bottom)->reserved_range().end(), (*top)->reserved_range().base);
    EXPECT_EQ((*top)->reserved_range().end(), (*stack)->reserved_range().end());
}

TEST(Region, PieceKeepsTheWriteExecuteHistory)
{
    auto region = make_region(Access::Read);
    ASSERT_TRUE(region);
    region->set_access(Access::ReadWrite);
    region->set_access(Access::Read);
    EXPECT_TRUE(region->has_been_writable());
    auto piece = region->try_create_piece(kBase + kPage, kPage);
    ASSERT_TRUE(piece);
    EXPECT_EQ((*piece)->access(), Access::Read);
    EXPECT_TRUE((*piece)->has_been_writable());
    EXPECT_FALSE((*piece)->has_been_executable());
    EXPECT_EQ(error_of((*piece)->check_protect(Access::ReadExecute, false)), EACCES);

    auto x = make_region(Access::ReadExecute);
    ASSERT_TRUE(x);
    x->set_access(Access::Read);
    auto xpiece = x->try_create_piece(kBase, kPage);
    ASSERT_TRUE(xpiece);
    EXPECT_TRUE((*xpiece)->has_been_executable());
    EXPECT_FALSE((*xpiece)->has_been_writable());
    EXPECT_EQ(error_of((*xpiece)->check_protect(Access::ReadWrite, false)), EACCES);
}

TEST(Region, PieceOfAnImmutableRegionIsImmutable)
{
    auto region = make_region(Access::Read);
    ASSERT_TRUE(region);
    region->set_immutable();
    auto piece = region->try_create_piece(kBase, kPage);
    ASSERT_TRUE(piece);
    EXPECT_TRUE((*piece)->is_immutable());
    EXPECT_EQ(error_of((*piece)->check_protect(Access::Read, false)), EPERM);
}

TEST(Region, PieceOutsideTheRegionIsEINVAL)
{
    auto region = make_region(Access::Read); // [kBase, kBase + 4 pages)
    ASSERT_TRUE(region);
    EXPECT_EQ(error_of(region->try_create_piece(kBase - kPage, kPage)), EINVAL);     // below
    EXPECT_EQ(error_of(region->try_create_piece(kBase - kPage, 2 * kPage)), EINVAL); // straddles base
    EXPECT_EQ(error_of(region->try_create_piece(kBase, 0)), EINVAL);                 // empty
    EXPECT_EQ(error_of(region->try_create_piece(kBase, 5 * kPage)), EINVAL);         // too long
    EXPECT_EQ(error_of(region->try_create_piece(kBase + 3 * kPage, 2 * kPage)), EINVAL); // straddles end
    EXPECT_EQ(error_of(region->try_create_piece(kBase + 4 * kPage, kPage)), EINVAL); // at the end
    EXPECT_EQ(error_of(region->try_create_piece(kBase, size_t(0) - kPage)), EINVAL);
}

// A piece starting past the region's end must be refused even when the
// object behind the region is larger, so the object would have the pages.
TEST(Region, PieceStartingPastTheEndIsEINVAL)
{
    auto object = make_object(16 * kPage);
    auto region = Region::try_create(params({ kBase, 4 * kPage }, object));
    ASSERT_TRUE(region);
    auto piece = (*region)->try_create_piece(kBase + 8 * kPage, kPage);
    EXPECT_FALSE(piece) << "piece [" << std::hex << kBase + 8 * kPage << ", +1 page) accepted outside region ["
                        << kBase << ", " << kBase + 4 * kPage << ")";
    if (!piece) {
        EXPECT_EQ(piece.error().code(), EINVAL);
    }
    auto far = (*region)->try_create_piece(kBase + 5 * kPage, 2 * kPage);
    EXPECT_FALSE(far);
}

// --- check_protect ----------------------------------------------------------

TEST(Region, ProtectWithinMaxAccessIsAllowed)
{
    auto region = make_region(Access::Read, Access::ReadWrite);
    ASSERT_TRUE(region);
    EXPECT_TRUE(region->check_protect(Access::None, false));
    EXPECT_TRUE(region->check_protect(Access::Read, false));
    EXPECT_TRUE(region->check_protect(Access::ReadWrite, false));
    EXPECT_TRUE(region->check_protect(Access::Write, false));
}

TEST(Region, ProtectBeyondMaxAccessIsEACCES)
{
    auto ro = make_region(Access::Read, Access::Read);
    ASSERT_TRUE(ro);
    EXPECT_EQ(error_of(ro->check_protect(Access::ReadWrite, false)), EACCES);
    EXPECT_EQ(error_of(ro->check_protect(Access::ReadWrite, true)), EACCES);
    EXPECT_EQ(error_of(ro->check_protect(Access::ReadExecute, true)), EACCES);
    EXPECT_EQ(error_of(ro->check_protect(Access::Execute, false)), EACCES);
    EXPECT_TRUE(ro->check_protect(Access::Read, false));

    auto rw = make_region(Access::ReadWrite, Access::ReadWrite);
    ASSERT_TRUE(rw);
    // allow_write_execute lifts W^X, never max access.
    EXPECT_EQ(error_of(rw->check_protect(Access::ReadWriteExecute, true)), EACCES);
    EXPECT_EQ(error_of(rw->check_protect(Access::ReadExecute, true)), EACCES);

    auto none = make_region(Access::None, Access::None);
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->check_protect(Access::None, false));
    EXPECT_EQ(error_of(none->check_protect(Access::Read, false)), EACCES);
}

TEST(Region, WriteAndExecuteAtOnceIsRefused)
{
    auto region = make_region(Access::None, Access::ReadWriteExecute);
    ASSERT_TRUE(region);
    EXPECT_EQ(error_of(region->check_protect(Access::ReadWriteExecute, false)), EACCES);
    EXPECT_EQ(error_of(region->check_protect(Access::Write | Access::Execute, false)), EACCES);
    EXPECT_TRUE(region->check_protect(Access::ReadWriteExecute, true));
    EXPECT_TRUE(region->check_protect(Access::Write | Access::Execute, true));
    // A fresh region with no history may become either.
    EXPECT_TRUE(region->check_protect(Access::ReadWrite, false));
    EXPECT_TRUE(region->check_protect(Access::ReadExecute, false));
}

TEST(Region, OnceWritableNeverExecutable)
{
    auto region = make_region(Access::Read, Access::ReadWriteExecute);
    ASSERT_TRUE(region);
    EXPECT_TRUE(region->check_protect(Access::ReadExecute, false));
    region->set_access(Access::ReadWrite);
    EXPECT_EQ(region->access(), Access::ReadWrite);
    EXPECT_TRUE(region->has_been_writable());
    region->set_access(Access::Read);
    EXPECT_EQ(region->access(), Access::Read);
    EXPECT_TRUE(region->has_been_writable()) << "history survives dropping the right";
    EXPECT_EQ(error_of(region->check_protect(Access::ReadExecute, false)), EACCES);
    EXPECT_EQ(error_of(region->check_protect(Access::Execute, false)), EACCES);
    EXPECT_TRUE(region->check_protect(Access::ReadWrite, false));
    EXPECT_TRUE(region->check_protect(Access::Read, false));
    EXPECT_TRUE(region->check_protect(Access::None, false));
    EXPECT_TRUE(region->check_protect(Access::ReadExecute, true));
}

TEST(Region, OnceExecutableNeverWritable)
{
    auto region = make_region(Access::Read, Access::ReadWriteExecute);
    ASSERT_TRUE(region);
    region->set_access(Access::ReadExecute);
    EXPECT_TRUE(region->has_been_executable());
    EXPECT_FALSE(region->has_been_writable());
    region->set_access(Access::None);
    EXPECT_TRUE(region->has_been_executable());
    EXPECT_EQ(error_of(region->check_protect(Access::ReadWrite, false)), EACCES);
    EXPECT_EQ(error_of(region->check_protect(Access::Write, false)), EACCES);
    EXPECT_TRUE(region->check_protect(Access::ReadExecute, false));
    EXPECT_TRUE(region->check_protect(Access::ReadWrite, true));
}

TEST(Region, ImmutableRegionRefusesEveryProtectWithEPERM)
{
    auto region = make_region(Access::Read, Access::ReadWriteExecute);
    ASSERT_TRUE(region);
    region->set_immutable();
    EXPECT_TRUE(region->is_immutable());
    EXPECT_TRUE(has(region->flags(), RegionFlags::Immutable));
    EXPECT_EQ(error_of(region->check_protect(Access::Read, false)), EPERM); // even unchanged
    EXPECT_EQ(error_of(region->check_protect(Access::None, false)), EPERM);
    EXPECT_EQ(error_of(region->check_protect(Access::ReadWrite, true)), EPERM);
    // EPERM wins over EACCES.
    EXPECT_EQ(error_of(region->check_protect(Access::ReadWriteExecute, false)), EPERM);

    auto created = make_region(Access::Read, Access::Read, RegionFlags::Immutable | RegionFlags::Shared);
    ASSERT_TRUE(created);
    EXPECT_TRUE(created->is_immutable());
    EXPECT_EQ(error_of(created->check_protect(Access::Read, false)), EPERM);
}

TEST(Region, SetImmutableKeepsOtherFlags)
{
    auto region = make_region(Access::Read, Access::Read, RegionFlags::Stack);
    ASSERT_TRUE(region);
    region->set_immutable();
    EXPECT_EQ(region->flags(), RegionFlags::Stack | RegionFlags::Immutable);
}

// --- names ------------------------------------------------------------------

TEST(Region, ValidateNameAcceptsPrintableNames)
{
    for (std::string name : { std::string(), std::string("heap"), std::string("a b"),
             std::string("libfoo.so:data (1) #2 ~!@%^&*()-_=+{}|;'\",.<>/?"), std::string(79, 'x') }) {
        auto r = Region::validate_name(name);
        EXPECT_TRUE(r) << "'" << name << "': " << r.error().message();
    }
}

TEST(Region, ValidateNameRefusesLongNames)
{
    EXPECT_EQ(error_of(Region::validate_name(std::string(80, 'x'))), EINVAL);
    EXPECT_EQ(error_of(Region::validate_name(std::string(1000, 'x'))), EINVAL);
}

TEST(Region, ValidateNameRefusesCharactersMapsCannotShow)
{
    for (char c : { '[', ']', '\\', '$', '`', '\n', '\t', '\r', '\x01', '\x1f', '\x7f', '\0' }) {
        std::string name = "ab";
        name.insert(name.begin() + 1, c);
        EXPECT_EQ(error_of(Region::validate_name(name)), EINVAL) << "character " << int(c);
    }
    EXPECT_EQ(error_of(Region::validate_name("caf\xc3\xa9")), EINVAL) << "non-ASCII";
    EXPECT_EQ(error_of(Region::validate_name("\xff")), EINVAL);
    // Every printable ASCII character other than the five is fine.
    for (int c = 0x20; c <= 0x7e; ++c) {
        bool bad = c == '[' || c == ']' || c == '\\' || c == '$' || c == '`';
        EXPECT_EQ(bool(Region::validate_name(std::string(1, char(c)))), !bad) << "character " << c;
    }
}

TEST(Region, SetNameReplacesTheName)
{
    auto region = make_region(Access::Read);
    ASSERT_TRUE(region);
    region->set_name("renamed");
    EXPECT_EQ(region->name(), "renamed");
    auto piece = region->try_create_piece(kBase, kPage);
    ASSERT_TRUE(piece);
    EXPECT_EQ((*piece)->name(), "renamed");
}

// --- in-flight faults -------------------------------------------------------

TEST(Region, CountsFaultsInFlight)
{
    auto region = make_region(Access::ReadWrite);
    ASSERT_TRUE(region);
    region->begin_fault();
    region->begin_fault();
    EXPECT_EQ(region->faults_in_flight(), 2u);
    region->end_fault();
    EXPECT_EQ(region->faults_in_flight(), 1u);
    region->end_fault();
    EXPECT_EQ(region->faults_in_flight(), 0u);
    region->wait_for_faults_to_end(); // nothing in flight: returns at once
}

TEST(Region, WaitForFaultsBlocksUntilTheLastEnds)
{
    using namespace std::chrono_literals;
    auto region = make_region(Access::ReadWrite);
    ASSERT_TRUE(region);
    region->begin_fault();
    region->begin_fault();
    std::atomic<bool> started { false }, done { false };
    std::thread waiter([&] {
        started = true;
        region->wait_for_faults_to_end();
        done = true;
    });
    while (!started)
        std::this_thread::yield();
    std::this_thread::sleep_for(100ms);
    EXPECT_FALSE(done) << "returned with two faults in flight";
    region->end_fault();
    std::this_thread::sleep_for(100ms);
    EXPECT_FALSE(done) << "returned with one fault in flight";
    region->end_fault();
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!done && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
    EXPECT_TRUE(done) << "not woken when the last fault ended";
    if (!done) {
        // Wake it another way so that join() does not hang the suite.
        region->begin_fault();
        region->end_fault();
    }
    waiter.join();
    EXPECT_EQ(region->faults_in_flight(), 0u);
}

TEST(Region, WaitForFaultsWithManyHandlerThreads)
{
    using namespace std::chrono_literals;
    auto region = make_region(Access::ReadWrite);
    ASSERT_TRUE(region);
    constexpr int kThreads = 8;
    constexpr int kFaults = 20000;
    // Each "handler" holds one fault in flight all through its run, so the
    // count cannot reach zero until all of them finished.
    for (int i = 0; i < kThreads; ++i)
        region->begin_fault();
    std::atomic<int> finished { 0 };
    std::vector<std::thread> handlers;
    for (int t = 0; t < kThreads; ++t) {
        handlers.emplace_back([&] {
            for (int i = 0; i < kFaults; ++i) {
                region->begin_fault();
                region->end_fault();
            }
            finished.fetch_add(1);
            region->end_fault();
        });
    }
    region->wait_for_faults_to_end();
    EXPECT_EQ(finished.load(), kThreads);
    EXPECT_EQ(region->faults_in_flight(), 0u);
    for (auto& t : handlers)
        t.join();
}
