// Copy-on-write chains (docs/cow.md, "Chains"): a clone of a view that has
// written since its freeze views the view's frozen objects with a layer of
// the pages it wrote. Bytes on every side, physical sharing from smaps, the
// collapse of covered layers, the limits that flatten a chain, rollback to a
// chained snapshot, fork, and memory returned when the clones go.
#include "support/memfd_count.h"
#include "support/smaps.h"
#include "test_support.h"

#include <faultline/faultline.h>

#include <cstring>
#include <dirent.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace faultline;
using faultline::testing::anonymous_kb;
using faultline::testing::memfd_count;
using faultline::testing::kPage;

namespace {

// Each page holds one byte value throughout; the model keeps that value.
void write_pages(char* p, std::vector<char>& model, size_t first, size_t end, char value)
{
    for (size_t i = first; i < end; ++i) {
        memset(p + i * kPage, value, kPage);
        model[i] = value;
    }
}

// The first page whose sampled bytes differ from the model, or model.size().
size_t first_mismatch(const char* p, const std::vector<char>& model)
{
    for (size_t i = 0; i < model.size(); ++i)
        for (size_t b = 0; b < kPage; b += 509)
            if (p[i * kPage + b] != model[i])
                return i;
    return model.size();
}

// A clonable region of `pages` pages, each written with `value` (in
// `model` too), frozen by a first clone (left mapped); nullptr on failure.
char* frozen_region(Runtime& rt, size_t pages, std::vector<char>& model, char value)
{
    auto r = rt.map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable });
    if (!r)
        return nullptr;
    auto* a = static_cast<char*>(*r);
    model.assign(pages, 0);
    write_pages(a, model, 0, pages, value);
    return rt.clone(a) ? a : nullptr;
}

unsigned depth_of(Runtime& rt, const void* p)
{
    auto st = rt.region_stats(p);
    return st ? st->chain_depth : 0;
}

} // namespace

TEST(CowChain, ACloneOfAWrittenViewSharesTheFrozenPagesAndCopiesOnlyTheWrittenOnes)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 1024; // 4 MiB
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* a = static_cast<char*>(*r);
    std::vector<char> base(pages);
    write_pages(a, base, 0, pages, 'f');
    auto first = rt->clone(a); // freezes
    ASSERT_TRUE(first);
    std::vector<char> source = base;
    write_pages(a, source, 100, 164, 'w'); // 64 pages written since the freeze
    auto c = rt->clone(a);
    ASSERT_TRUE(c) << c.error().message();
    auto* b = static_cast<char*>(*c);
    EXPECT_EQ(depth_of(*rt, b), 2u) << "the frozen base and a layer of the written pages";
    EXPECT_EQ(first_mismatch(b, source), pages);
    // Reading the whole clone adds no memory: its pages are the base's and
    // the layer's, shared (the layer is the one copy of the written pages).
    EXPECT_EQ(anonymous_kb(b, pages * kPage), 0);
    auto st = rt->region_stats(b);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->cow_shared_pages, pages);
    EXPECT_EQ(st->cow_private_pages, 0u);
    // The three diverge.
    std::vector<char> clone = source;
    write_pages(b, clone, 120, 121, 'c');
    write_pages(b, clone, 500, 501, 'c');
    write_pages(a, source, 130, 131, 's');
    EXPECT_EQ(first_mismatch(a, source), pages);
    EXPECT_EQ(first_mismatch(b, clone), pages);
    EXPECT_EQ(first_mismatch(static_cast<char*>(*first), base), pages) << "the first clone never changed";
    EXPECT_EQ(anonymous_kb(b, pages * kPage), long(2 * kPage / 1024)) << "one private copy per page the clone wrote";
    // A clone of the chained clone before it writes again is one more view.
    auto same = rt->clone(*first);
    ASSERT_TRUE(same);
    EXPECT_EQ(depth_of(*rt, *same), 1u);
}

TEST(CowChain, ClonesOfClonesWithWritesAtEveryLevelStayCorrectAndBounded)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 256;
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    std::vector<char*> level { static_cast<char*>(*r) };
    std::vector<std::vector<char>> model(1, std::vector<char>(pages));
    write_pages(level[0], model[0], 0, pages, 'a');
    ASSERT_TRUE(rt->clone(level[0])); // freezes
    // 20 generations, each writing a run of its own before it is cloned: the
    // chain grows a layer per generation until its limit, then is
    // flattened, and every generation keeps its own bytes.
    unsigned deepest = 0;
    for (size_t g = 1; g <= 20; ++g) {
        write_pages(level[g - 1], model[g - 1], (g * 11) % pages, (g * 11) % pages + 5, char('A' + g));
        auto c = rt->clone(level[g - 1]);
        ASSERT_TRUE(c) << "generation " << g << ": " << c.error().message();
        level.push_back(static_cast<char*>(*c));
        model.push_back(model[g - 1]);
        deepest = std::max(deepest, depth_of(*rt, *c));
        EXPECT_LE(depth_of(*rt, *c), 8u) << "generation " << g;
    }
    EXPECT_GE(deepest, 3u) << "chains were built, not flat copies";
    for (size_t g = 0; g < level.size(); ++g)
        write_pages(level[g], model[g], 200 + g, 201 + g, char('0' + g));
    for (size_t g = 0; g < level.size(); ++g)
        EXPECT_EQ(first_mismatch(level[g], model[g]), pages) << "generation " << g;
}

TEST(CowChain, ALayerCoveredByTheLayersAboveItIsLeftOut)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 64;
    std::vector<char> m;
    char* a = frozen_region(*rt, pages, m, 'b');
    ASSERT_NE(a, nullptr);
    write_pages(a, m, 0, 8, '1');
    auto c1 = rt->clone(a); // base + layer {0..8}
    ASSERT_TRUE(c1);
    EXPECT_EQ(depth_of(*rt, *c1), 2u);
    auto* b = static_cast<char*>(*c1);
    std::vector<char> mb = m;
    write_pages(b, mb, 0, 16, '2'); // covers the layer under it
    auto c2 = rt->clone(b);
    ASSERT_TRUE(c2);
    EXPECT_EQ(depth_of(*rt, *c2), 2u) << "the covered layer is dropped from the new chain";
    EXPECT_EQ(first_mismatch(static_cast<char*>(*c2), mb), pages);
    auto* d = static_cast<char*>(*c2);
    std::vector<char> md = mb;
    write_pages(d, md, 30, 32, '3'); // covers nothing below
    auto c3 = rt->clone(d);
    ASSERT_TRUE(c3);
    EXPECT_EQ(depth_of(*rt, *c3), 3u);
    EXPECT_EQ(first_mismatch(static_cast<char*>(*c3), md), pages);
}

TEST(CowChain, ScatteredWritesPastTheRunLimitAreFlattenedIntoOneCopy)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 512;
    std::vector<char> m;
    char* a = frozen_region(*rt, pages, m, 's');
    ASSERT_NE(a, nullptr);
    for (size_t i = 0; i < pages; i += 4) // 128 runs: one mapping each, past the limit
        write_pages(a, m, i, i + 1, 'x');
    auto c = rt->clone(a);
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(depth_of(*rt, *c), 1u);
    EXPECT_EQ(first_mismatch(static_cast<char*>(*c), m), pages);
}

TEST(CowChain, RollbackToAChainedSnapshotRestoresExactBytes)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 128;
    std::vector<char> m;
    char* a = frozen_region(*rt, pages, m, 'r');
    ASSERT_NE(a, nullptr);
    write_pages(a, m, 10, 20, 'n');
    auto s = rt->snapshot(a);
    ASSERT_TRUE(s) << s.error().message();
    EXPECT_EQ(depth_of(*rt, *s), 2u);
    const std::vector<char> at_snapshot = m;
    write_pages(a, m, 15, 40, 'm');
    ASSERT_TRUE(rt->rollback(a, *s));
    EXPECT_EQ(first_mismatch(a, at_snapshot), pages);
    EXPECT_EQ(depth_of(*rt, a), 2u) << "the region views the snapshot's chain";
    // Now the region views the snapshot's object: the next rollback drops
    // only what was written.
    write_pages(a, m, 12, 13, 'q');
    write_pages(a, m, 90, 91, 'q');
    ASSERT_TRUE(rt->rollback(a, *s));
    EXPECT_EQ(first_mismatch(a, at_snapshot), pages);
    EXPECT_EQ(first_mismatch(static_cast<char*>(*s), at_snapshot), pages) << "the snapshot never changed";
}

TEST(CowChain, AForkChildReadsAChainedCloneAndNeitherSideSeesTheOthersWrites)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 64;
    std::vector<char> m;
    char* a = frozen_region(*rt, pages, m, 'k');
    ASSERT_NE(a, nullptr);
    write_pages(a, m, 5, 9, 'l');
    auto c = rt->clone(a);
    ASSERT_TRUE(c);
    ASSERT_EQ(depth_of(*rt, *c), 2u);
    auto* b = static_cast<char*>(*c);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int bad = first_mismatch(b, m) != pages;
        b[6 * kPage] = 'z'; // the child's own copy
        bad |= b[6 * kPage] != 'z';
        _exit(bad);
    }
    b[7 * kPage] = 'p';
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the child read wrong bytes in the chained clone";
    EXPECT_EQ(b[6 * kPage], 'l') << "the child's write reached the parent";
    EXPECT_EQ(b[7 * kPage], 'p');
}

TEST(CowChain, RepeatedChainedClonesAndUnmapsReturnTheirMemory)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 64;
    auto r = rt->map_anonymous({ .size = pages * kPage, .flags = RegionFlags::Clonable });
    ASSERT_TRUE(r);
    auto* a = static_cast<char*>(*r);
    std::vector<char> m(pages);
    write_pages(a, m, 0, pages, 'u');
    auto f = rt->clone(a); // freezes
    ASSERT_TRUE(f);
    const int before = memfd_count();
    // A chain of clones of clones, each unmapping its parent once cloned:
    // the layers nobody views any more go with their last chain.
    void* current = *f;
    std::vector<char> mc = m;
    for (int i = 0; i < 100; ++i) {
        write_pages(static_cast<char*>(current), mc, size_t(i) % pages, size_t(i) % pages + 1, char(i));
        auto c = rt->clone(current);
        ASSERT_TRUE(c) << i << ": " << c.error().message();
        ASSERT_EQ(first_mismatch(static_cast<char*>(*c), mc), pages) << i;
        ASSERT_TRUE(rt->unmap(current, pages * kPage));
        current = *c;
        ASSERT_LE(depth_of(*rt, current), 8u) << i;
    }
    EXPECT_LE(memfd_count(), before + 8) << "at most one memfd per layer of the last chain";
    ASSERT_TRUE(rt->unmap(current, pages * kPage));
    EXPECT_LE(memfd_count(), before) << "every layer went with its last view";
    EXPECT_EQ(first_mismatch(a, m), pages);
}

// A clone reads its source's pages to copy them (a layer, or a flattened
// copy); a source the program made unreadable (Access::None) must still be
// cloned — once EFAULT (found by the c_api fuzzer).
TEST(CowChain, AnUnreadableSourceIsClonedWithItsBytes)
{
    FAULTLINE_RUNTIME_OR_SKIP(rt);
    const size_t pages = 32;
    std::vector<char> m;
    char* a = frozen_region(*rt, pages, m, 'e');
    ASSERT_NE(a, nullptr);
    write_pages(a, m, 4, 12, 'g');
    ASSERT_TRUE(rt->protect(a, pages * kPage, Access::None));
    auto layered = rt->clone(a); // a layer of pages 4..12
    ASSERT_TRUE(layered) << layered.error().message();
    EXPECT_EQ(depth_of(*rt, *layered), 2u);
    ASSERT_TRUE(rt->protect(*layered, pages * kPage, Access::Read));
    EXPECT_EQ(first_mismatch(static_cast<char*>(*layered), m), pages);
    // A discard makes every later clone a flattened copy, read the same way.
    ASSERT_TRUE(rt->discard(a + 20 * kPage, 2 * kPage));
    m[20] = m[21] = 0;
    auto flat = rt->snapshot(a);
    ASSERT_TRUE(flat) << flat.error().message();
    EXPECT_EQ(depth_of(*rt, *flat), 1u);
    EXPECT_EQ(first_mismatch(static_cast<char*>(*flat), m), pages);
}
