// The threads of this process and their names (/proc/self/task/*/comm), for
// tests that look for the runtime's threads (faultline-uffd, ...).
#pragma once

#include <dirent.h>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace faultline::testing {

inline std::string thread_name(int tid)
{
    std::ifstream comm("/proc/self/task/" + std::to_string(tid) + "/comm");
    std::string name;
    std::getline(comm, name);
    return name;
}

// (tid, name) of every thread of this process.
inline std::vector<std::pair<int, std::string>> process_threads()
{
    std::vector<std::pair<int, std::string>> threads;
    DIR* d = opendir("/proc/self/task");
    if (!d)
        return threads;
    while (dirent* e = readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        const int tid = std::stoi(e->d_name);
        threads.emplace_back(tid, thread_name(tid));
    }
    closedir(d);
    return threads;
}

} // namespace faultline::testing
