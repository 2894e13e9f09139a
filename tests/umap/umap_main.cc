// main() of faultline-umap-tests: umap reads its environment once, at the
// first call, so the variables the tests check are set here before anything
// else runs, and the configuration is read at once.
#include <umap/umap.h>

#include <gtest/gtest.h>

#include <cstdlib>

int main(int argc, char** argv)
{
    setenv("UMAP_PAGESIZE", "16384", 1);
    setenv("UMAP_BUFSIZE", "64", 1);
    setenv("UMAP_PAGE_FILLERS", "3", 1);
    setenv("UMAP_PAGE_EVICTORS", "5", 1);
    setenv("UMAP_EVICT_HIGH_WATER_THRESHOLD", "80", 1);
    setenv("UMAP_EVICT_LOW_WATER_THRESHOLD", "60", 1);
    setenv("UMAP_READ_AHEAD", "2", 1);
    setenv("UMAP_MAX_FAULT_EVENTS", "128", 1);
    (void)umapcfg_get_umap_page_size();
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
