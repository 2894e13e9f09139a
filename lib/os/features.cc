#include "os/features.h"

#include <cstdlib>

namespace faultline::os {

static constexpr const char* kNames[] = {
    "syscall", "devnode", "thread_id", "poison", "zeropage", "mseal", "anon_name", "wp", "wp_shmem", "minor",
    "pagemap_scan", "io_uring", "wp_async", "psi", "continue_wp", "dontunmap",
};
static_assert(sizeof(kNames) / sizeof(kNames[0]) == unsigned(Feature::Count));

const char* feature_name(Feature f) noexcept
{
    return unsigned(f) < unsigned(Feature::Count) ? kNames[unsigned(f)] : "?";
}

std::vector<std::string> FeatureSet::names() const
{
    std::vector<std::string> out;
    for (unsigned i = 0; i < unsigned(Feature::Count); ++i)
        if (has(Feature(i)))
            out.emplace_back(kNames[i]);
    return out;
}

FeatureSet parse_feature_list(std::string_view list, std::vector<std::string>* unknown)
{
    FeatureSet set;
    while (!list.empty()) {
        auto comma = list.find(',');
        auto word = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        while (!word.empty() && word.front() == ' ')
            word.remove_prefix(1);
        while (!word.empty() && word.back() == ' ')
            word.remove_suffix(1);
        if (word.empty())
            continue;
        bool found = false;
        if (word == "all") {
            // "all" hides the optional features but not both ways of opening
            // userfaultfd, which would leave nothing to test.
            for (unsigned i = 0; i < unsigned(Feature::Count); ++i)
                if (Feature(i) != Feature::Syscall && Feature(i) != Feature::DevNode)
                    set.set(Feature(i));
            found = true;
        }
        for (unsigned i = 0; i < unsigned(Feature::Count) && !found; ++i) {
            if (word == kNames[i]) {
                set.set(Feature(i));
                found = true;
            }
        }
        if (!found && unknown)
            unknown->emplace_back(word);
    }
    return set;
}

FeatureSet disabled_features(std::string_view extra, std::vector<std::string>* unknown)
{
    const char* env = std::getenv("FAULTLINE_DISABLE");
    FeatureSet set = parse_feature_list(env ? env : "", unknown);
    return FeatureSet(set.bits() | parse_feature_list(extra, unknown).bits());
}

} // namespace faultline::os
