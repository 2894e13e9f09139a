// The test runner. Death tests run in the "threadsafe" style (re-exec) since
// the runtime under test always has handler threads running.
#include <gtest/gtest.h>

int main(int argc, char** argv)
{
    testing::InitGoogleTest(&argc, argv);
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    return RUN_ALL_TESTS();
}
