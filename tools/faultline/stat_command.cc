#include "stat_command.h"

#include "exit_codes.h"
#include "json_reader.h"
#include "stat_client.h"
#include "stat_printer.h"

#include <faultline/stat_protocol.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>

namespace faultline::cli {

namespace {

struct StatArgs {
    pid_t pid = 0;
    bool json = false;
    std::optional<unsigned> runtime;
};

template <typename T>
bool parse_number(std::string_view s, T& out)
{
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

int usage_error(const char* fmt, const char* what)
{
    fprintf(stderr, "faultline stat: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\nusage: faultline %s\n", kStatSynopsis);
    return kExitUsage;
}

// Returns the exit status on a usage error, or nullopt when `out` is set.
std::optional<int> parse(std::span<char* const> args, StatArgs& out)
{
    bool have_pid = false;
    for (size_t i = 0; i < args.size(); ++i) {
        std::string_view a = args[i];
        if (a == "--json") {
            out.json = true;
        } else if (a == "--runtime") {
            unsigned n = 0;
            if (i + 1 >= args.size() || !parse_number(std::string_view(args[i + 1]), n))
                return usage_error("--runtime needs a number (the N of @faultline/PID/N)%s", "");
            out.runtime = n;
            ++i;
        } else if (a.starts_with("-")) {
            return usage_error("unknown option '%s'", args[i]);
        } else if (have_pid) {
            return usage_error("one PID only ('%s' is extra)", args[i]);
        } else {
            int pid = 0;
            if (!parse_number(a, pid) || pid <= 0)
                return usage_error("'%s' is not a process id", args[i]);
            out.pid = pid_t(pid);
            have_pid = true;
        }
    }
    if (!have_pid)
        return usage_error("no PID given%s", "");
    return std::nullopt;
}

// Prints one endpoint's report; returns its exit status.
int show(const StatClient& client, const StatClient::Endpoint& endpoint, bool json)
{
    const std::string address = stat_protocol::display(endpoint.name);
    auto reply = client.query(endpoint);
    if (!reply) {
        fprintf(stderr, "faultline stat: %s\n", reply.error().message());
        return kExitNotFound;
    }
    switch (reply->kind) {
    case StatClient::Reply::Kind::Refused:
        fprintf(stderr, "faultline stat: %s %s\n", address.c_str(), reply->text.c_str());
        return kExitRefused;
    case StatClient::Reply::Kind::Error:
        fprintf(stderr, "faultline stat: %s answered %s\n", address.c_str(), reply->text.c_str());
        return kExitNotFound;
    case StatClient::Reply::Kind::Report:
        break;
    }
    // Parsed in both forms: --json promises a valid document.
    auto report = JsonValue::parse(reply->text);
    if (!report) {
        fprintf(stderr, "faultline stat: %s sent a malformed report: %s\n", address.c_str(), report.error().message());
        return kExitNotFound;
    }
    if (json)
        printf("%s\n", reply->text.c_str());
    else
        StatPrinter(stdout).print(address, *report);
    return kExitOk;
}

} // namespace

int stat_command(std::span<char* const> args)
{
    StatArgs a;
    if (auto status = parse(args, a))
        return *status;
    // EPERM means the process exists under another user: its runtime will
    // say so (refused) more precisely than kill(2) can.
    if (kill(a.pid, 0) != 0 && errno == ESRCH) {
        fprintf(stderr, "faultline stat: no process with pid %d\n", int(a.pid));
        return kExitNotFound;
    }
    StatClient client(a.pid);
    auto endpoints = client.endpoints();
    if (!endpoints) {
        fprintf(stderr, "faultline stat: %s\n", endpoints.error().message());
        return kExitNotFound;
    }
    if (a.runtime)
        std::erase_if(*endpoints, [&](const StatClient::Endpoint& e) { return e.number != *a.runtime; });
    if (endpoints->empty()) {
        if (a.runtime)
            fprintf(stderr, "faultline stat: process %d has no runtime number %u\n", int(a.pid), *a.runtime);
        else
            fprintf(stderr,
                "faultline stat: process %d publishes no faultline statistics endpoint (no runtime in it, the "
                "endpoint is off: Config::stat_endpoint or FAULTLINE_DISABLE=stat_endpoint, or it runs in another "
                "network namespace)\n",
                int(a.pid));
        return kExitNotFound;
    }
    // Several runtimes: each report in turn (--json: one document per line).
    int status = kExitOk;
    for (size_t i = 0; i < endpoints->size(); ++i) {
        if (i > 0 && !a.json)
            printf("\n");
        int one = show(client, (*endpoints)[i], a.json);
        // Refusal outranks other failures: it names what the user can fix.
        if (one == kExitRefused || (one != kExitOk && status == kExitOk))
            status = one;
    }
    return status;
}

} // namespace faultline::cli
