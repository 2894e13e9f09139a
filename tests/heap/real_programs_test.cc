// Real programs under the preloaded heap: each runs twice, plainly and with
// libfaultline_malloc.so, and must print the same bytes and exit the same
// way (short versions; the bench has the full-size ones).
#include "heap_support.h"
#include "spawn.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace faultline::heap_testing {
namespace {

bool have(const char* program) { return access(program, X_OK) == 0; }

class RealPrograms : public ::testing::Test {
protected:
    void SetUp() override
    {
        ASSERT_HEAP_ACTIVE();
        ASSERT_NE(getenv("FAULTLINE_TEST_PRELOAD"), nullptr) << "tests/meson.build sets FAULTLINE_TEST_PRELOAD";
        char dir[] = "/tmp/faultline-heap-XXXXXX";
        ASSERT_NE(mkdtemp(dir), nullptr);
        dir_ = dir;
    }
    void TearDown() override
    {
        if (!dir_.empty())
            (void)!system(("rm -rf '" + dir_ + "'").c_str());
    }
    // Same output and status with and without the preload.
    void same(const std::string& script)
    {
        const std::string in_dir = "cd '" + dir_ + "' && " + script;
        const Spawned plain = spawn_script(in_dir, false);
        const Spawned heaped = spawn_script(in_dir, true);
        ASSERT_TRUE(WIFEXITED(plain.status)) << "plain run: status " << plain.status;
        EXPECT_EQ(heaped.status, plain.status);
        EXPECT_FALSE(plain.out.empty());
        EXPECT_EQ(heaped.out, plain.out);
    }
    std::string dir_;
};

TEST_F(RealPrograms, Python)
{
    if (!have("/usr/bin/python3"))
        GTEST_SKIP() << "/usr/bin/python3 is not installed";
    same("/usr/bin/python3 -c '"
         "import json, re, hashlib, collections\n"
         "d = {i: str(i) * (i % 50) for i in range(300000)}\n"
         "c = collections.Counter(len(v) for v in d.values())\n"
         "s = json.dumps(sorted(c.items()))\n"
         "words = re.findall(r\"[0-9]{3}\", \"\".join(d[i] for i in range(0, 300000, 7)))\n"
         "print(len(d), hashlib.sha256(s.encode()).hexdigest(), len(words), sorted(set(words))[:5])\n"
         "'");
}

TEST_F(RealPrograms, PythonTestSuiteSlice)
{
    if (!have("/usr/bin/python3"))
        GTEST_SKIP() << "/usr/bin/python3 is not installed";
    if (access("/usr/lib/python3.11/test/test_json/__init__.py", R_OK) != 0)
        GTEST_SKIP() << "Python's test suite is not installed (Debian package libpython3.11-testsuite)";
    // The summary line only: timings differ between runs.
    same("/usr/bin/python3 -m test -q test_json test_bisect test_heapq > log 2>&1; rc=$?; "
         "grep -E '^(Tests result|All [0-9]+ tests OK)' log; exit $rc");
}

TEST_F(RealPrograms, Sqlite)
{
    if (!have("/usr/bin/sqlite3"))
        GTEST_SKIP() << "sqlite3 is not installed";
    same("rm -f t.db && sqlite3 t.db \""
         "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT, g INTEGER);"
         "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)"
         " INSERT INTO t SELECT i, printf('%08x', (i * 2654435761) % 4294967296), i % 97 FROM n;"
         "CREATE INDEX tv ON t(v);"
         "SELECT g, count(*), min(v), max(v) FROM t GROUP BY g ORDER BY g LIMIT 10;"
         "SELECT count(*) FROM t WHERE v LIKE 'a%';\"");
}

TEST_F(RealPrograms, XzRoundTrip)
{
    if (!have("/usr/bin/xz"))
        GTEST_SKIP() << "xz is not installed";
    same("seq 1 400000 > in && xz -T1 -6 -c in > in.xz && xz -dc in.xz | cmp - in && sha256sum in.xz | cut -c1-64");
}

TEST_F(RealPrograms, Sort)
{
    same("awk 'BEGIN { srand(7); for (i = 0; i < 300000; i++) printf \"%08d %s\\n\", int(rand() * 1e8), i }' > in"
         " && sort -S 32M in | sha256sum | cut -c1-64 && sort -n -k2 in | tail -1");
}

} // namespace
} // namespace faultline::heap_testing
