// Feature names, parse_feature_list and disabled_features ($FAULTLINE_DISABLE).
#include "os/features.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

using faultline::os::disabled_features;
using faultline::os::Feature;
using faultline::os::feature_name;
using faultline::os::FeatureSet;
using faultline::os::parse_feature_list;

namespace {

using Names = std::vector<std::string>;

const Names kAllNames = { "syscall", "devnode", "thread_id", "poison", "zeropage", "mseal", "anon_name", "wp",
    "wp_shmem", "minor", "pagemap_scan", "io_uring", "wp_async", "psi", "continue_wp", "dontunmap" };
const Names kOptionalNames = { "thread_id", "poison", "zeropage", "mseal", "anon_name", "wp", "wp_shmem", "minor",
    "pagemap_scan", "io_uring", "wp_async", "psi", "continue_wp", "dontunmap" };

// Sets or unsets FAULTLINE_DISABLE for one test and restores the old value.
class DisableEnv {
public:
    explicit DisableEnv(const char* value)
    {
        if (const char* old = std::getenv("FAULTLINE_DISABLE"))
            saved_ = old;
        if (value)
            setenv("FAULTLINE_DISABLE", value, 1);
        else
            unsetenv("FAULTLINE_DISABLE");
    }
    ~DisableEnv()
    {
        if (saved_)
            setenv("FAULTLINE_DISABLE", saved_->c_str(), 1);
        else
            unsetenv("FAULTLINE_DISABLE");
    }
    DisableEnv(const DisableEnv&) = delete;
    DisableEnv& operator=(const DisableEnv&) = delete;

private:
    std::optional<std::string> saved_;
};

uint32_t bit(Feature f) { return 1u << unsigned(f); }

} // namespace

// --- names and FeatureSet -----------------------------------------------------

TEST(Features, NamesOfEveryFeature)
{
    EXPECT_STREQ(feature_name(Feature::Syscall), "syscall");
    EXPECT_STREQ(feature_name(Feature::DevNode), "devnode");
    EXPECT_STREQ(feature_name(Feature::ThreadId), "thread_id");
    EXPECT_STREQ(feature_name(Feature::Poison), "poison");
    EXPECT_STREQ(feature_name(Feature::ZeroPage), "zeropage");
    EXPECT_STREQ(feature_name(Feature::Mseal), "mseal");
    EXPECT_STREQ(feature_name(Feature::AnonName), "anon_name");
    EXPECT_STREQ(feature_name(Feature::WriteProtect), "wp");
    EXPECT_STREQ(feature_name(Feature::WpShmem), "wp_shmem");
    EXPECT_STREQ(feature_name(Feature::Minor), "minor");
    EXPECT_STREQ(feature_name(Feature::PagemapScan), "pagemap_scan");
    EXPECT_STREQ(feature_name(Feature::IoUring), "io_uring");
    EXPECT_STREQ(feature_name(Feature::WpAsync), "wp_async");
    EXPECT_STREQ(feature_name(Feature::Count), "?");
    EXPECT_STREQ(feature_name(Feature(200)), "?");
}

TEST(Features, EveryNameParsesBackToItsFeature)
{
    for (unsigned i = 0; i < unsigned(Feature::Count); ++i) {
        std::vector<std::string> unknown;
        FeatureSet s = parse_feature_list(feature_name(Feature(i)), &unknown);
        EXPECT_EQ(s.bits(), 1u << i) << feature_name(Feature(i));
        EXPECT_TRUE(unknown.empty());
    }
}

TEST(FeatureSet, SetHasAndClear)
{
    FeatureSet s;
    EXPECT_EQ(s.bits(), 0u);
    for (unsigned i = 0; i < unsigned(Feature::Count); ++i)
        EXPECT_FALSE(s.has(Feature(i)));
    s.set(Feature::Poison);
    s.set(Feature::Mseal);
    EXPECT_TRUE(s.has(Feature::Poison));
    EXPECT_TRUE(s.has(Feature::Mseal));
    EXPECT_FALSE(s.has(Feature::ThreadId));
    EXPECT_EQ(s.bits(), bit(Feature::Poison) | bit(Feature::Mseal));
    s.set(Feature::Poison); // idempotent
    EXPECT_EQ(s.bits(), bit(Feature::Poison) | bit(Feature::Mseal));
    s.set(Feature::Poison, false);
    EXPECT_FALSE(s.has(Feature::Poison));
    EXPECT_TRUE(s.has(Feature::Mseal));
    s.set(Feature::Poison, false); // clearing a clear bit
    EXPECT_EQ(s.bits(), bit(Feature::Mseal));
    EXPECT_TRUE(FeatureSet(bit(Feature::DevNode)).has(Feature::DevNode));
}

TEST(FeatureSet, Without)
{
    FeatureSet all((1u << unsigned(Feature::Count)) - 1);
    FeatureSet some;
    some.set(Feature::Syscall);
    some.set(Feature::ZeroPage);
    FeatureSet rest = all.without(some);
    EXPECT_FALSE(rest.has(Feature::Syscall));
    EXPECT_FALSE(rest.has(Feature::ZeroPage));
    EXPECT_EQ(rest.names(), (Names { "devnode", "thread_id", "poison", "mseal", "anon_name", "wp", "wp_shmem", "minor", "pagemap_scan", "io_uring", "wp_async", "psi", "continue_wp", "dontunmap" }));
    EXPECT_EQ(some.without(all).bits(), 0u);
    EXPECT_EQ(all.without(FeatureSet()).bits(), all.bits());
}

TEST(FeatureSet, NamesAreInDeclarationOrder)
{
    FeatureSet s;
    // Set in reverse order; names() still lists them in enum order.
    s.set(Feature::AnonName);
    s.set(Feature::Poison);
    s.set(Feature::Syscall);
    EXPECT_EQ(s.names(), (Names { "syscall", "poison", "anon_name" }));
    EXPECT_TRUE(FeatureSet().names().empty());
    EXPECT_EQ(FeatureSet((1u << unsigned(Feature::Count)) - 1).names(), kAllNames);
}

// --- parse_feature_list -------------------------------------------------------

TEST(FeatureList, EmptyListIsEmptySet)
{
    std::vector<std::string> unknown;
    EXPECT_EQ(parse_feature_list("", &unknown).bits(), 0u);
    EXPECT_EQ(parse_feature_list(",", &unknown).bits(), 0u);
    EXPECT_EQ(parse_feature_list(" , ,, ", &unknown).bits(), 0u);
    EXPECT_EQ(parse_feature_list("   ", &unknown).bits(), 0u);
    EXPECT_TRUE(unknown.empty());
}

TEST(FeatureList, ParsesCommaSeparatedNames)
{
    std::vector<std::string> unknown;
    FeatureSet s = parse_feature_list("poison,thread_id", &unknown);
    EXPECT_EQ(s.bits(), bit(Feature::Poison) | bit(Feature::ThreadId));
    EXPECT_EQ(s.names(), (Names { "thread_id", "poison" }));
    EXPECT_TRUE(unknown.empty());
}

TEST(FeatureList, IgnoresSpacesAndEmptyEntries)
{
    std::vector<std::string> unknown;
    FeatureSet s = parse_feature_list("  poison ,  thread_id,,, mseal  ,", &unknown);
    EXPECT_EQ(s.bits(), bit(Feature::Poison) | bit(Feature::ThreadId) | bit(Feature::Mseal));
    EXPECT_TRUE(unknown.empty()) << unknown.size();
    EXPECT_EQ(parse_feature_list(",,zeropage", &unknown).bits(), bit(Feature::ZeroPage));
    EXPECT_EQ(parse_feature_list("zeropage,", &unknown).bits(), bit(Feature::ZeroPage));
    EXPECT_TRUE(unknown.empty());
}

TEST(FeatureList, RepeatedNamesAreHarmless)
{
    std::vector<std::string> unknown;
    EXPECT_EQ(parse_feature_list("mseal,mseal, mseal", &unknown).bits(), bit(Feature::Mseal));
    EXPECT_TRUE(unknown.empty());
}

TEST(FeatureList, AllHidesEverythingButTheWaysToOpenUserfaultfd)
{
    std::vector<std::string> unknown;
    FeatureSet s = parse_feature_list("all", &unknown);
    EXPECT_FALSE(s.has(Feature::Syscall));
    EXPECT_FALSE(s.has(Feature::DevNode));
    EXPECT_EQ(s.names(), kOptionalNames);
    EXPECT_TRUE(unknown.empty());
    EXPECT_EQ(parse_feature_list(" all ").bits(), s.bits());
}

TEST(FeatureList, AllCombinesWithExplicitNames)
{
    std::vector<std::string> unknown;
    FeatureSet s = parse_feature_list("all,devnode", &unknown);
    EXPECT_TRUE(s.has(Feature::DevNode));
    EXPECT_FALSE(s.has(Feature::Syscall));
    EXPECT_EQ(s.names(), (Names { "devnode", "thread_id", "poison", "zeropage", "mseal", "anon_name", "wp", "wp_shmem", "minor", "pagemap_scan", "io_uring", "wp_async", "psi", "continue_wp", "dontunmap" }));
    EXPECT_EQ(parse_feature_list("syscall,all").names(),
        (Names { "syscall", "thread_id", "poison", "zeropage", "mseal", "anon_name", "wp", "wp_shmem", "minor", "pagemap_scan", "io_uring", "wp_async", "psi", "continue_wp", "dontunmap" }));
    EXPECT_TRUE(unknown.empty());
}

TEST(FeatureList, ReportsUnknownNames)
{
    std::vector<std::string> unknown;
    FeatureSet s = parse_feature_list("bogus, poison ,  not_a_feature ,alll,thread-id", &unknown);
    EXPECT_EQ(s.bits(), bit(Feature::Poison));
    EXPECT_EQ(unknown, (Names { "bogus", "not_a_feature", "alll", "thread-id" }));
}

TEST(FeatureList, UnknownNamesWithoutAVectorAreIgnored)
{
    FeatureSet s = parse_feature_list("nope,anon_name,also_nope");
    EXPECT_EQ(s.bits(), bit(Feature::AnonName));
}

TEST(FeatureList, NamesMustMatchWhole)
{
    std::vector<std::string> unknown;
    FeatureSet s = parse_feature_list("poisonx,xpoison,poi,mseal2", &unknown);
    EXPECT_EQ(s.bits(), 0u);
    EXPECT_EQ(unknown, (Names { "poisonx", "xpoison", "poi", "mseal2" }));
}

// --- disabled_features ----------------------------------------------------------

TEST(FeaturesEnv, NothingDisabledByDefault)
{
    DisableEnv env(nullptr);
    std::vector<std::string> unknown;
    EXPECT_EQ(disabled_features("", &unknown).bits(), 0u);
    EXPECT_TRUE(unknown.empty());
}

TEST(FeaturesEnv, ReadsFaultlineDisable)
{
    DisableEnv env("poison, zeropage");
    std::vector<std::string> unknown;
    FeatureSet s = disabled_features("", &unknown);
    EXPECT_EQ(s.bits(), bit(Feature::Poison) | bit(Feature::ZeroPage));
    EXPECT_TRUE(unknown.empty());
}

TEST(FeaturesEnv, CombinesEnvironmentAndExtra)
{
    DisableEnv env("poison");
    std::vector<std::string> unknown;
    FeatureSet s = disabled_features("mseal,thread_id", &unknown);
    EXPECT_EQ(s.names(), (Names { "thread_id", "poison", "mseal" }));
    EXPECT_TRUE(unknown.empty());
}

TEST(FeaturesEnv, ExtraAloneWhenUnset)
{
    DisableEnv env(nullptr);
    EXPECT_EQ(disabled_features("devnode").bits(), bit(Feature::DevNode));
}

TEST(FeaturesEnv, EmptyVariable)
{
    DisableEnv env("");
    EXPECT_EQ(disabled_features("").bits(), 0u);
    EXPECT_EQ(disabled_features("anon_name").bits(), bit(Feature::AnonName));
}

TEST(FeaturesEnv, AllFromTheEnvironment)
{
    DisableEnv env("all");
    EXPECT_EQ(disabled_features("").names(), kOptionalNames);
    EXPECT_EQ(disabled_features("syscall").names(),
        (Names { "syscall", "thread_id", "poison", "zeropage", "mseal", "anon_name", "wp", "wp_shmem", "minor", "pagemap_scan", "io_uring", "wp_async", "psi", "continue_wp", "dontunmap" }));
}

TEST(FeaturesEnv, UnknownNamesFromBothSources)
{
    DisableEnv env("bogus,poison");
    std::vector<std::string> unknown;
    FeatureSet s = disabled_features("mseal, nope", &unknown);
    EXPECT_EQ(s.bits(), bit(Feature::Poison) | bit(Feature::Mseal));
    EXPECT_EQ(unknown, (Names { "bogus", "nope" }));
}

TEST(FeaturesEnv, EnvironmentIsReadOnEveryCall)
{
    {
        DisableEnv env("poison");
        EXPECT_EQ(disabled_features("").bits(), bit(Feature::Poison));
    }
    {
        DisableEnv env("mseal");
        EXPECT_EQ(disabled_features("").bits(), bit(Feature::Mseal));
    }
}
