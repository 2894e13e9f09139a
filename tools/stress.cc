// tools/stress.cc — faultline-stress, the fault-path stress test that
// `./dev stress [SECONDS]` runs (docs/reliability.md, "Stress test").
//
//   faultline-stress [SECONDS] [--threads N] [--mutators N] [--slots N]
//                    [--seed N] [--handler-threads N] [--phases N]
//                    [--watchdog SECONDS] [--accessor-nice N]
//
// Accessor threads (32 by default) read and write pages of many anonymous
// regions while mutator threads map, unmap, split, protect, discard, rename
// and seal those regions. Every word an accessor reads is checked against a
// model of what the page must hold; a watchdog fails the run when any access
// or API call takes longer than a few seconds; and the run is split into
// phases that each use a fresh Runtime with a different configuration
// (handler threads, fault-around, hidden kernel features).
//
// The model
// ---------
// Regions live in a fixed table of slots. A slot holds at most one mapping
// at a time (pieces of which may since have been unmapped) and publishes its
// state through a sequence lock: a mutator makes the sequence odd before it
// changes anything and even again once the model describes the new state. An
// accessor reads the sequence, then the model, then the memory, and then the
// sequence again. Only when the sequence did not change is the observation
// checked, because only then did the model and the memory describe the same
// moment; otherwise it is dropped.
//
// Every 8-byte word of a page is either zero (never written since the page
// was mapped or last discarded) or a value that encodes the slot, the
// mapping's incarnation, the page index, the word index and the accessor that
// owns the word: accessor t owns the words w with w % threads == t, so every
// word has exactly one writer. Each accessor also remembers the last value it
// wrote to each page and whether that write certainly landed after the page
// was last zeroed; for such words it expects exactly that value. Together
// this catches lost writes, pages that went back to zero or to an older
// value, pages shown at the wrong offset or in the wrong region, and bytes
// that survived from an earlier mapping of the same addresses.
//
// Address reuse: the runtime hands unmapped addresses to later maps (its
// allocator is best-fit, so it does so often). An accessor whose view of a
// slot went stale during an unmap could otherwise write into the region
// placed there next, and the model would blame the runtime for that. So maps
// and unmaps are serialised by one mutex, and an unmap keeps it until every
// accessor that may have seen the old state has finished its visit (an
// epoch-based grace period). The same mutex guards the tool's record of which
// arena pages belong to which slot, which is also used to check that the
// runtime never hands out a page twice.
#include <faultline/runtime.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csetjmp>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

using namespace faultline;

namespace {

constexpr unsigned kMaxPages = 64;       // pages in the largest region
constexpr unsigned kMaxVisitPages = 8;   // pages one accessor visit touches at most
constexpr unsigned kHotSlots = 4;        // slots that a quarter of all visits go to...
constexpr unsigned kHotPages = 2;        // ...touching only their first pages
constexpr unsigned kMaxImmutablePagesPerSlot = 8;
constexpr unsigned kMaxFailuresShown = 40;
constexpr uint64_t kIdle = UINT64_MAX;   // an accessor's announcement between visits
constexpr uint64_t kWordMask = 0x1ff;

// ---------------------------------------------------------------------------
// Options

struct Options {
    double seconds = 60;
    unsigned threads = 32;
    unsigned mutators = 4;
    unsigned slots = 128;
    uint64_t seed = 0;
    unsigned handler_threads = 0; // 0: each phase picks its own
    unsigned phases = 0;          // 0: chosen from the duration
    double watchdog_seconds = 5;
    // Nice value added to the accessor threads. Faults only happen where the
    // mutators keep dropping pages, and with 32 accessors against a handful
    // of mutators and handler threads, equal shares starve the churn on small
    // machines; +5 roughly triples the others' share. (Measured on 2 CPUs:
    // about 30% more faults served than at 0.)
    int accessor_nice = 5;
};

[[noreturn]] void usage(const char* message)
{
    if (message)
        std::fprintf(stderr, "faultline-stress: %s\n", message);
    std::fprintf(stderr,
        "usage: faultline-stress [SECONDS] [--threads N] [--mutators N] [--slots N]\n"
        "                        [--seed N] [--handler-threads N] [--phases N] [--watchdog SECONDS]\n"
        "                        [--accessor-nice N]\n");
    std::exit(2);
}

uint64_t parse_number(const char* text, const char* what, uint64_t lo, uint64_t hi)
{
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(text, &end, 0);
    if (errno || !end || *end || v < lo || v > hi) {
        std::string m = std::string("bad value for ") + what + ": '" + text + "'";
        usage(m.c_str());
    }
    return v;
}

double parse_seconds(const char* text, const char* what)
{
    char* end = nullptr;
    double v = std::strtod(text, &end);
    if (!end || *end || !(v > 0) || v > 1e7) {
        std::string m = std::string("bad value for ") + what + ": '" + text + "'";
        usage(m.c_str());
    }
    return v;
}

Options parse_options(int argc, char** argv)
{
    Options o;
    o.seed = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^ uint64_t(getpid());
    bool have_seconds = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc)
                usage((a + " needs a value").c_str());
            return argv[++i];
        };
        if (a == "-h" || a == "--help")
            usage(nullptr);
        else if (a == "--threads")
            o.threads = unsigned(parse_number(value(), "--threads", 1, 256));
        else if (a == "--mutators")
            o.mutators = unsigned(parse_number(value(), "--mutators", 1, 64));
        else if (a == "--slots")
            o.slots = unsigned(parse_number(value(), "--slots", kHotSlots, 1024));
        else if (a == "--seed")
            o.seed = parse_number(value(), "--seed", 0, UINT64_MAX);
        else if (a == "--handler-threads")
            o.handler_threads = unsigned(parse_number(value(), "--handler-threads", 1, 64));
        else if (a == "--phases")
            o.phases = unsigned(parse_number(value(), "--phases", 1, 1000));
        else if (a == "--watchdog")
            o.watchdog_seconds = parse_seconds(value(), "--watchdog");
        else if (a == "--accessor-nice")
            o.accessor_nice = int(parse_number(value(), "--accessor-nice", 0, 19));
        else if (!a.empty() && a[0] != '-' && !have_seconds) {
            o.seconds = parse_seconds(a.c_str(), "SECONDS");
            have_seconds = true;
        } else
            usage(("unknown argument '" + a + "'").c_str());
    }
    return o;
}

// ---------------------------------------------------------------------------
// Small utilities

int64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// splitmix64: tiny, fast, and good enough to pick operations.
struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed) {}
    uint64_t next()
    {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    unsigned below(unsigned n) { return unsigned(next() % n); }
    bool percent(unsigned p) { return below(100) < p; }
};

std::atomic<uint64_t> g_failures { 0 };
std::mutex g_print_lock;

// Counts a failure and prints it (the first kMaxFailuresShown of them: one
// runtime bug tends to produce many reports, and the first ones matter).
__attribute__((format(printf, 1, 2))) void failure(const char* fmt, ...)
{
    uint64_t n = g_failures.fetch_add(1) + 1;
    if (n > kMaxFailuresShown + 1)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    std::lock_guard lock(g_print_lock);
    if (n == kMaxFailuresShown + 1)
        std::fprintf(stderr, "stress: further failures are counted but not shown\n");
    else
        std::fprintf(stderr, "stress: FAIL: %s\n", buf);
    std::fflush(stderr);
}

const char* access_name(Access a)
{
    switch (uint8_t(a)) {
    case 0: return "---";
    case 1: return "r--";
    case 2: return "-w-";
    case 3: return "rw-";
    case 4: return "--x";
    case 5: return "r-x";
    case 6: return "-wx";
    case 7: return "rwx";
    default: return "???";
    }
}

// On x86-64 (and the other targets Debian runs this on) write and execute
// permission imply read; the tool only ever uses ---, r--, rw- and r-x.
bool readable(Access a) { return a != Access::None; }
bool writable(Access a) { return has(a, Access::Write); }

// Region names the mutators give; index 0 is "no name".
constexpr const char* kNames[] = { "", "stress", "stress-a", "stress-b", "x", "stress-a-rather-longer-name-0123456789" };
constexpr unsigned kNameCount = sizeof kNames / sizeof kNames[0];

// ---------------------------------------------------------------------------
// Watchdog
//
// Every thread publishes what it is doing before an access or API call that
// could block and clears it afterwards; the watchdog thread fails the run
// when one has been in progress for longer than the limit. A hung fault is
// exactly the bug this catches, so it prints what it knows and _exit()s
// rather than trying to unwind threads that may never come back.

struct alignas(64) Activity {
    std::atomic<int64_t> since { 0 }; // steady-clock ns when it began; 0 = idle
    std::atomic<uintptr_t> address { 0 };
    std::atomic<const char*> what { "" };
    char label[32] = {};

    void begin(const char* w, uintptr_t a)
    {
        what.store(w, std::memory_order_relaxed);
        address.store(a, std::memory_order_relaxed);
        since.store(now_ns(), std::memory_order_release);
    }
    void end() { since.store(0, std::memory_order_release); }
};

void run_watchdog(Activity* activities, unsigned count, int64_t limit_ns, const std::atomic<bool>* finished)
{
    pthread_setname_np(pthread_self(), "stress-watchdog");
    while (!finished->load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        int64_t now = now_ns();
        for (unsigned i = 0; i < count; ++i) {
            Activity& a = activities[i];
            int64_t since = a.since.load(std::memory_order_acquire);
            if (since == 0 || now - since <= limit_ns)
                continue;
            std::fprintf(stderr,
                "stress: FAIL: WATCHDOG: %s has been in '%s' at %#lx for %.1f s (limit %.1f s); stopping the run\n",
                a.label, a.what.load(), (unsigned long)a.address.load(), double(now - since) / 1e9, double(limit_ns) / 1e9);
            std::fprintf(stderr, "stress: FAILED (watchdog)\n");
            std::fflush(stderr);
            _exit(1);
        }
    }
}

// ---------------------------------------------------------------------------
// Guarded memory accesses
//
// Accesses to a region that is concurrently unmapped or made inaccessible
// raise SIGSEGV, and so do the probes that check that protection is
// enforced. The handler jumps back into the access function only when the
// faulting thread armed it and the address lies in the current arena;
// anything else is a real crash and is passed on.
//
// The jump buffers are taken with sigsetjmp(…, 0), which saves no signal
// mask: saving it would cost a system call on every access, and faults are
// the exception. The handler restores the thread's usual mask itself before
// it jumps, since whatever ran the handler may have blocked signals for it
// (ThreadSanitizer's wrapper runs handlers with every signal blocked; leaving
// them blocked would turn the next expected SIGSEGV into a fatal one).

struct Guard {
    sigjmp_buf jump;
    volatile sig_atomic_t armed = 0;
    sigset_t mask; // the thread's signal mask outside the handler
};
thread_local Guard t_guard;

// Every thread that touches region memory calls this first.
void prepare_thread_for_faults() { pthread_sigmask(SIG_SETMASK, nullptr, &t_guard.mask); }

std::atomic<uintptr_t> g_arena_lo { 0 };
std::atomic<uintptr_t> g_arena_hi { 0 };
struct sigaction g_previous_segv;
struct sigaction g_previous_bus;

void write_stderr(const char* s) { (void)!write(2, s, std::strlen(s)); }

void write_hex(uintptr_t v)
{
    char buf[2 + 16 + 1];
    char* p = buf + sizeof buf;
    *--p = 0;
    do {
        *--p = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    *--p = 'x';
    *--p = '0';
    write_stderr(p);
}

void on_fault_signal(int sig, siginfo_t* info, void*)
{
    const uintptr_t a = uintptr_t(info->si_addr);
    const bool in_arena = a >= g_arena_lo.load(std::memory_order_relaxed) && a < g_arena_hi.load(std::memory_order_relaxed);
    if (sig == SIGSEGV && t_guard.armed && in_arena) {
        t_guard.armed = 0;
        pthread_sigmask(SIG_SETMASK, &t_guard.mask, nullptr);
        siglongjmp(t_guard.jump, 1);
    }
    // Only async-signal-safe calls from here on.
    write_stderr(sig == SIGSEGV ? "stress: FAIL: unexpected SIGSEGV" : "stress: FAIL: unexpected SIGBUS");
    if (info->si_code <= 0) {
        write_stderr(" sent by a process or thread, not raised by an access\n");
    } else {
        write_stderr(" at ");
        write_hex(a);
        write_stderr(!in_arena ? " (outside the arena: a crash in the tool or the runtime)\n"
                               : " (in the arena, where no access expected one)\n");
    }
    // Hand the signal to whoever had it before (a sanitizer reports it) or to
    // the default action. A fault raised by an instruction recurs when the
    // handler returns; a signal sent by a thread must be sent again.
    struct sigaction previous = sig == SIGSEGV ? g_previous_segv : g_previous_bus;
    if (!(previous.sa_flags & SA_SIGINFO) && previous.sa_handler == SIG_IGN)
        previous.sa_handler = SIG_DFL;
    sigaction(sig, &previous, nullptr);
    if (info->si_code <= 0)
        raise(sig);
}

void install_signal_handlers()
{
    struct sigaction sa {};
    sa.sa_sigaction = on_fault_signal;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_previous_segv);
    sigaction(SIGBUS, &sa, &g_previous_bus);
}

// Each returns false when the access raised SIGSEGV inside the arena. The
// accesses are atomics: accessors share pages (each word has one writer, but
// pages are read by all), and atomics keep that well-defined and free of
// sanitizer reports.

// The accesses themselves live in their own functions, for two reasons.
// Nothing they change is then live across sigsetjmp in the caller (which
// -Wclobbered rightly warns about). And they can be kept out of ThreadSanitizer's
// instrumentation: TSan implements non-relaxed atomics in its runtime under
// internal locks, so a SIGSEGV taken inside it and left by siglongjmp would
// leave those locks held. Region memory is what the run tests, not state the
// threads share through the tool: the kernel writes it behind TSan's back
// (UFFDIO_COPY, MADV_DONTNEED) anyway, and every model variable stays
// instrumented.
//
// Loads are acquire loads: an accessor must not let its closing read of the
// slot's sequence move before them (see Accessor::visit), and acquire orders
// every later access after the load without a fence, which TSan cannot model.
// On x86-64 an acquire load is a plain load.
#define STRESS_TOUCH [[gnu::noinline, gnu::no_sanitize("thread")]]

// The words of a page one read covers: [lo, hi), every stride-th word.
struct Span {
    size_t lo = 0, hi = 0, stride = 1;
    size_t count() const { return hi > lo ? (hi - lo + stride - 1) / stride : 0; }
};

// Copies the spans' words of `src` to the same positions of `out`.
STRESS_TOUCH void copy_words(const uint64_t* src, uint64_t* out, const Span* spans, unsigned count)
{
    for (unsigned k = 0; k < count; ++k)
        for (size_t i = spans[k].lo; i < spans[k].hi; i += spans[k].stride)
            out[i] = __atomic_load_n(src + i, __ATOMIC_ACQUIRE);
}

STRESS_TOUCH void store_words(uint64_t* dst, size_t first, size_t stride, size_t words, uint64_t value_base)
{
    for (size_t w = first; w < words; w += stride)
        __atomic_store_n(dst + w, value_base | (w & kWordMask), __ATOMIC_RELAXED);
}

// A write access that changes nothing: an atomic add of zero. Used to check
// that a page is (or is not) writable without disturbing the model.
STRESS_TOUCH void touch_for_write(uint64_t* p) { __atomic_fetch_add(p, 0, __ATOMIC_ACQ_REL); }

STRESS_TOUCH void touch_for_read(const uint64_t* p)
{
    volatile uint64_t sink = __atomic_load_n(p, __ATOMIC_ACQUIRE);
    (void)sink;
}

bool guarded_read(const uint64_t* src, uint64_t* out, const Span* spans, unsigned count)
{
    if (sigsetjmp(t_guard.jump, 0) != 0)
        return false;
    t_guard.armed = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    copy_words(src, out, spans, count);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_guard.armed = 0;
    return true;
}

bool guarded_read(const uint64_t* src, uint64_t* out, size_t words)
{
    const Span all { 0, words, 1 };
    return guarded_read(src, out, &all, 1);
}

// Stores value_base | word into every word first, first + stride, ...
bool guarded_write(uint64_t* dst, size_t first, size_t stride, size_t words, uint64_t value_base)
{
    if (sigsetjmp(t_guard.jump, 0) != 0)
        return false;
    t_guard.armed = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    store_words(dst, first, stride, words, value_base);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_guard.armed = 0;
    return true;
}

bool guarded_probe_write(uint64_t* p)
{
    if (sigsetjmp(t_guard.jump, 0) != 0)
        return false;
    t_guard.armed = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    touch_for_write(p);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_guard.armed = 0;
    return true;
}

bool guarded_probe_read(const uint64_t* p)
{
    if (sigsetjmp(t_guard.jump, 0) != 0)
        return false;
    t_guard.armed = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    touch_for_read(p);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_guard.armed = 0;
    return true;
}

// ---------------------------------------------------------------------------
// Page contents

// bit 63: set (so a written word is never zero); 48-62: the writer's counter;
// 33-47: incarnation; 23-32: slot; 15-22: owner (accessor); 9-14: page;
// 0-8: word. Fields are kept modulo their width, which is enough: what the
// check must tell apart is this page's writes from anybody else's.
uint64_t value_base(unsigned slot, uint32_t incarnation, unsigned page, unsigned owner, uint32_t counter)
{
    return (uint64_t(1) << 63) | (uint64_t(counter & 0x7fff) << 48) | (uint64_t(incarnation & 0x7fff) << 33)
        | (uint64_t(slot & 0x3ff) << 23) | (uint64_t(owner & 0xff) << 15) | (uint64_t(page & 0x3f) << 9);
}

bool plausible(uint64_t v, unsigned slot, uint32_t incarnation, unsigned page, size_t word, unsigned owner)
{
    const uint64_t without_counter = ~(uint64_t(0x7fff) << 48);
    return (v & without_counter) == (value_base(slot, incarnation, page, owner, 0) | (word & kWordMask));
}

std::string describe_value(uint64_t v)
{
    char buf[160];
    if (v == 0)
        return "0";
    if (!(v >> 63))
        std::snprintf(buf, sizeof buf, "%#llx (not a value the tool writes)", (unsigned long long)v);
    else
        std::snprintf(buf, sizeof buf, "%#llx (slot %u, incarnation %u, page %u, word %u, owner %u, counter %u)",
            (unsigned long long)v, unsigned((v >> 23) & 0x3ff), unsigned((v >> 33) & 0x7fff), unsigned((v >> 9) & 0x3f),
            unsigned(v & kWordMask), unsigned((v >> 15) & 0xff), unsigned((v >> 48) & 0x7fff));
    return buf;
}

// ---------------------------------------------------------------------------
// The model

// What the model says of one page of a slot, packed into one atomic word.
// zero_id changes whenever the page is (re)zeroed, by a map or a discard; it
// comes from a global counter, so it never repeats.
struct PageView {
    bool mapped = false;
    Access access = Access::None;
    bool immutable = false;
    uint64_t zero_id = 0;
};

uint64_t pack(const PageView& v)
{
    return uint64_t(v.mapped) | uint64_t(uint8_t(v.access)) << 1 | uint64_t(v.immutable) << 4 | v.zero_id << 8;
}

PageView unpack(uint64_t w) { return { bool(w & 1), Access((w >> 1) & 7), bool((w >> 4) & 1), w >> 8 }; }

struct Slot {
    // Published to accessors under the sequence lock.
    alignas(64) std::atomic<uint64_t> seq { 0 };
    std::atomic<uintptr_t> base { 0 };
    std::atomic<uint32_t> npages { 0 };
    std::atomic<uint32_t> incarnation { 0 };
    std::atomic<bool> live { false }; // some page is mapped
    std::atomic<uint64_t> pages[kMaxPages] {};

    // The rest belongs to the mutator holding `busy` (and to the main thread
    // between phases, after it joined the mutators).
    alignas(64) std::atomic<bool> busy { false };
    bool pinned = false;    // holds immutable pages: can never be mapped afresh
    bool committed = true;  // the mapping counts against the commit limit
    bool guard = false;     // a stack guard page below `base` is still reserved
    Access max_access = Access::None;
    uintptr_t last_base = 0;
    uint8_t been_writable[kMaxPages] = {};
    uint8_t been_executable[kMaxPages] = {};
    uint8_t name[kMaxPages] = {};
};

// What an accessor remembers of its last write to one page.
struct Record {
    uint64_t value_base = 0;
    uint64_t zero_id = 0;
    uint32_t counter = 0;
    bool valid = false;
    bool certain = false; // landed while the model was stable: the words hold exactly this
};

struct alignas(64) AccessorState {
    // The epoch this accessor saw when its current visit began, kIdle between
    // visits. A grace period waits until every accessor is idle or has
    // announced a newer epoch.
    std::atomic<uint64_t> announce { kIdle };
    std::atomic<uint64_t> visits { 0 };
    std::atomic<uint64_t> stable_visits { 0 };
    std::atomic<uint64_t> bytes_verified { 0 };
    std::atomic<uint64_t> segv_caught { 0 };
    std::vector<Record> records; // [slot * kMaxPages + page], this thread's only
};

struct Owner {
    unsigned slot;
    bool guard;
};

struct World {
    const Options& opt;
    Runtime& rt;
    size_t page;
    size_t words;
    uintptr_t arena_lo;
    uintptr_t arena_hi;
    std::unique_ptr<Slot[]> slots;
    std::vector<std::unique_ptr<AccessorState>> accessors;
    Activity* activities; // accessors, then mutators, then the main thread

    // Serialises maps and unmaps (see the top of the file) and guards `owners`.
    std::mutex reuse_lock;
    std::unordered_map<uintptr_t, Owner> owners; // arena page -> slot (guard pages too)

    std::atomic<uint64_t> epoch { 1 };
    std::atomic<uint64_t> next_zero_id { 1 };
    std::atomic<unsigned> pinned { 0 };
    unsigned pinned_cap = 0;
    std::atomic<bool> stop { false };
    std::atomic<uint64_t> ops { 0 };
    std::atomic<uint64_t> mutator_bytes_verified { 0 };

    World(const Options& o, Runtime& r)
        : opt(o)
        , rt(r)
        , page(size_t(sysconf(_SC_PAGESIZE)))
        , words(page / sizeof(uint64_t))
        , arena_lo(uintptr_t(r.arena_base()))
        , arena_hi(uintptr_t(r.arena_base()) + r.arena_size())
        , slots(new Slot[o.slots])
        , activities(nullptr)
    {
        for (unsigned t = 0; t < o.threads; ++t) {
            accessors.push_back(std::make_unique<AccessorState>());
            accessors.back()->records.resize(size_t(o.slots) * kMaxPages);
        }
        pinned_cap = std::max(2u, o.slots / 32);
    }

    uint64_t new_zero_id() { return next_zero_id.fetch_add(1); }
};

// Checks one page's words. `exact(owner, &base)` says whether the owner's
// words must hold exactly base | word (else zero or any value that owner may
// have written to this page). Returns the number of bad words; reports the
// first.
template <typename Exact>
unsigned verify_words(const World& w, const uint64_t* data, const Span* spans, unsigned nspans, unsigned slot,
    uint32_t incarnation, unsigned page, uintptr_t address, const PageView& view, Exact&& exact, const char* who)
{
    unsigned bad = 0;
    size_t first = 0;
    uint64_t first_value = 0, first_expected = 0;
    bool first_exact = false;
    for (unsigned k = 0; k < nspans; ++k) {
        for (size_t i = spans[k].lo; i < spans[k].hi; i += spans[k].stride) {
            const unsigned owner = unsigned(i % w.opt.threads);
            const uint64_t v = data[i];
            uint64_t expected = 0;
            const bool is_exact = exact(owner, &expected);
            // An exact expectation of base 0 means "must be zero"; any value the
            // tool writes has bit 63 set, so 0 is never a real base.
            const uint64_t want = expected ? (expected | (i & kWordMask)) : 0;
            const bool ok = is_exact ? v == want : (v == 0 || plausible(v, slot, incarnation, page, i, owner));
            if (!ok && bad++ == 0) {
                first = i;
                first_value = v;
                first_expected = want;
                first_exact = is_exact;
            }
        }
    }
    if (bad) {
        std::string expected = first_exact ? (first_expected ? "exactly " + describe_value(first_expected) : std::string("0"))
                                           : std::string("0 or a value written by owner ") + std::to_string(first % w.opt.threads);
        failure("%s: wrong data at %#lx (slot %u incarnation %u page %u %s zero_id %llu), word %zu: read %s, expected %s; %u bad word(s) read",
            who, (unsigned long)address, slot, incarnation, page, access_name(view.access), (unsigned long long)view.zero_id, first,
            describe_value(first_value).c_str(), expected.c_str(), bad);
    }
    return bad;
}

template <typename Exact>
unsigned verify_page(const World& w, const uint64_t* data, unsigned slot, uint32_t incarnation, unsigned page,
    uintptr_t address, const PageView& view, Exact&& exact, const char* who)
{
    const Span all { 0, w.words, 1 };
    return verify_words(w, data, &all, 1, slot, incarnation, page, address, view, std::forward<Exact>(exact), who);
}

// ---------------------------------------------------------------------------
// Accessors

struct Observation {
    unsigned page = 0;
    PageView view;
    uintptr_t address = 0;
    bool wrote = false, write_ok = false;
    bool read = false, read_ok = false;
    bool probed_write = false, probed_read = false, probe_ok = false;
    // The accessor's own words at the time of the read: exactly this value
    // (if the visit turns out stable) or unknown.
    bool own_exact = false;
    uint64_t own_base = 0;
    Span spans[2];
    unsigned nspans = 0;
};

class Accessor {
public:
    Accessor(World& w, unsigned index, uint64_t seed)
        : w_(w)
        , t_(index)
        , rng_(seed)
        , me_(*w.accessors[index])
        , act_(w.activities[index])
        , buf_(size_t(kMaxVisitPages) * w.words)
    {
    }

    void run()
    {
        char name[16];
        std::snprintf(name, sizeof name, "stress-acc%u", t_);
        pthread_setname_np(pthread_self(), name);
        prepare_thread_for_faults();
        // Accessors run at a lower priority (see Options::accessor_nice).
        // Raising a thread's nice value needs no privilege; failing is harmless.
        if (w_.opt.accessor_nice)
            (void)setpriority(PRIO_PROCESS, id_t(syscall(SYS_gettid)), w_.opt.accessor_nice);
        while (!w_.stop.load(std::memory_order_relaxed)) {
            // Nothing to do (an empty or changing slot): let the mutators run,
            // which matters on machines with fewer CPUs than threads.
            if (!visit())
                std::this_thread::yield();
        }
    }

private:
    World& w_;
    const unsigned t_;
    Rng rng_;
    AccessorState& me_;
    Activity& act_;
    std::vector<uint64_t> buf_;

    bool visit()
    {
        const bool hot = rng_.percent(25);
        const unsigned si = hot ? rng_.below(kHotSlots) : rng_.below(w_.opt.slots);
        Slot& s = w_.slots[si];

        me_.announce.store(w_.epoch.load());
        const uint64_t s1 = s.seq.load();
        if ((s1 & 1) || !s.live.load(std::memory_order_acquire)) {
            me_.announce.store(kIdle);
            return false;
        }
        // Acquire loads throughout the visit: see the closing sequence read.
        const uintptr_t base = s.base.load(std::memory_order_acquire);
        const unsigned n = s.npages.load(std::memory_order_acquire);
        const uint32_t inc = s.incarnation.load(std::memory_order_acquire);
        if (n == 0 || n > kMaxPages) { // a torn view; the sequence check would drop it
            me_.announce.store(kIdle);
            return false;
        }

        unsigned list[kMaxVisitPages];
        unsigned k = 1 + rng_.below(kMaxVisitPages);
        if (hot) {
            k = 1 + rng_.below(2);
            for (unsigned i = 0; i < k; ++i)
                list[i] = rng_.below(std::min(n, kHotPages));
        } else if (rng_.percent(50)) {
            // A run of neighbours, so fault-around windows get used and split.
            unsigned start = rng_.below(n);
            k = std::min(k, n - start);
            for (unsigned i = 0; i < k; ++i)
                list[i] = start + i;
        } else {
            for (unsigned i = 0; i < k; ++i)
                list[i] = rng_.below(n);
        }

        Observation obs[kMaxVisitPages];
        unsigned count = 0;
        for (unsigned i = 0; i < k; ++i) {
            const unsigned p = list[i];
            const PageView v = unpack(s.pages[p].load(std::memory_order_acquire));
            if (!v.mapped)
                continue;
            Observation& o = obs[count];
            uint64_t* out = buf_.data() + size_t(count) * w_.words;
            ++count;
            o.page = p;
            o.view = v;
            o.address = base + size_t(p) * w_.page;
            auto* words = reinterpret_cast<uint64_t*>(o.address);
            Record& r = me_.records[size_t(si) * kMaxPages + p];

            if (writable(v.access) && rng_.percent(50)) {
                // The record is updated now, so that a later observation of
                // the same page in this visit expects this write; it becomes
                // uncertain below if the visit turns out unstable.
                r.counter += 1;
                r.value_base = value_base(si, inc, p, t_, r.counter);
                r.zero_id = v.zero_id;
                r.valid = true;
                act_.begin("write", o.address);
                o.wrote = true;
                o.write_ok = guarded_write(words, t_, w_.opt.threads, w_.words, r.value_base);
                act_.end();
                r.certain = o.write_ok;
            }
            if (readable(v.access)) {
                o.own_exact = r.valid && r.certain && r.zero_id == v.zero_id;
                o.own_base = r.value_base;
                // A quarter of the reads check the whole page. The rest
                // check the accessor's own words (exactly) and one random
                // 128-byte chunk: a page from the wrong place is wrong in
                // every word, and checking 4 KiB on every touch would leave
                // little CPU for the mutators whose churn makes the faults.
                if (rng_.percent(25) || w_.words < 32) {
                    o.spans[0] = { 0, w_.words, 1 };
                    o.nspans = 1;
                } else {
                    const size_t chunk = 16 * rng_.below(unsigned(w_.words / 16));
                    o.spans[0] = { chunk, chunk + 16, 1 };
                    o.spans[1] = { t_, w_.words, w_.opt.threads };
                    o.nspans = 2;
                }
                act_.begin("read", o.address);
                o.read = true;
                o.read_ok = guarded_read(words, out, o.spans, o.nspans);
                act_.end();
                if (!writable(v.access) && rng_.percent(12)) {
                    act_.begin("write probe", o.address);
                    o.probed_write = true;
                    o.probe_ok = guarded_probe_write(words + t_);
                    act_.end();
                }
            } else if (rng_.percent(25)) {
                act_.begin("read probe", o.address);
                o.probed_read = true;
                o.probe_ok = guarded_probe_read(words);
                act_.end();
            }
        }

        // Every load above is an acquire load (the model's words, the page
        // contents, the probes), so none of them can be ordered after this
        // read: if the sequence is unchanged, they all saw the state it
        // stands for. (A seqlock usually puts a fence here; TSan does not
        // understand fences.)
        const uint64_t s2 = s.seq.load();
        me_.announce.store(kIdle);
        const bool stable = s1 == s2;

        me_.visits.fetch_add(1, std::memory_order_relaxed);
        unsigned segvs = 0;
        for (unsigned i = 0; i < count; ++i) {
            const Observation& o = obs[i];
            segvs += (o.wrote && !o.write_ok) + (o.read && !o.read_ok) + ((o.probed_read || o.probed_write) && !o.probe_ok);
            if (o.wrote && !stable)
                me_.records[size_t(si) * kMaxPages + o.page].certain = false;
        }
        me_.segv_caught.fetch_add(segvs, std::memory_order_relaxed);
        if (!stable)
            return true;
        me_.stable_visits.fetch_add(1, std::memory_order_relaxed);

        char who[48];
        std::snprintf(who, sizeof who, "accessor %u", t_);
        uint64_t verified = 0;
        for (unsigned i = 0; i < count; ++i) {
            const Observation& o = obs[i];
            if (o.wrote && !o.write_ok)
                failure("%s: SIGSEGV writing %#lx (slot %u page %u), which is mapped %s", who, (unsigned long)o.address, si, o.page,
                    access_name(o.view.access));
            if (o.read && !o.read_ok)
                failure("%s: SIGSEGV reading %#lx (slot %u page %u), which is mapped %s", who, (unsigned long)o.address, si, o.page,
                    access_name(o.view.access));
            if (o.probed_write && o.probe_ok)
                failure("%s: writing %#lx (slot %u page %u), which is mapped %s, did not fault", who, (unsigned long)o.address, si,
                    o.page, access_name(o.view.access));
            if (o.probed_read && o.probe_ok)
                failure("%s: reading %#lx (slot %u page %u), which is mapped %s, did not fault", who, (unsigned long)o.address, si,
                    o.page, access_name(o.view.access));
            if (o.read && o.read_ok) {
                const uint64_t* data = buf_.data() + size_t(i) * w_.words;
                verify_words(w_, data, o.spans, o.nspans, si, inc, o.page, o.address, o.view,
                    [&](unsigned owner, uint64_t* base_out) {
                        if (owner != t_ || !o.own_exact)
                            return false;
                        *base_out = o.own_base;
                        return true;
                    },
                    who);
                for (unsigned k = 0; k < o.nspans; ++k)
                    verified += o.spans[k].count() * sizeof(uint64_t);
            }
        }
        me_.bytes_verified.fetch_add(verified, std::memory_order_relaxed);
        return true;
    }
};

// ---------------------------------------------------------------------------
// Mutators

struct PageRange {
    unsigned a = 0, b = 0; // [a, b) in pages of the slot
    unsigned size() const { return b - a; }
};

const char* errno_name(int e)
{
    switch (e) {
    case 0: return "success";
    case EINVAL: return "EINVAL";
    case ENOENT: return "ENOENT";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EEXIST: return "EEXIST";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOMEM: return "ENOMEM";
    default: return strerror(e);
    }
}

class Mutator {
public:
    Mutator(World& w, unsigned index, uint64_t seed, Activity& activity)
        : w_(w)
        , index_(index)
        , rng_(seed)
        , act_(activity)
        , buf_(w.words)
    {
        std::snprintf(who_, sizeof who_, "mutator %u", index);
    }

    void run()
    {
        char name[16];
        std::snprintf(name, sizeof name, "stress-mut%u", index_);
        pthread_setname_np(pthread_self(), name);
        prepare_thread_for_faults();
        while (!w_.stop.load(std::memory_order_relaxed)) {
            const bool hot = rng_.percent(30);
            const unsigned si = hot ? rng_.below(kHotSlots) : rng_.below(w_.opt.slots);
            Slot& s = w_.slots[si];
            if (s.busy.exchange(true, std::memory_order_acquire))
                continue;
            operate(si, s);
            s.busy.store(false, std::memory_order_release);
            // Queries read /proc/self/pagemap under the runtime's API lock and
            // cost as much as dozens of other operations; a few suffice to
            // race them with everything else.
            if (rng_.below(1000) < 3)
                query();
        }
    }

    // Used by the main thread between phases.
    void unmap_everything()
    {
        for (unsigned si = 0; si < w_.opt.slots; ++si) {
            Slot& s = w_.slots[si];
            if (s.live.load())
                unmap(si, s, true);
        }
    }

private:
    World& w_;
    const unsigned index_;
    Rng rng_;
    Activity& act_;
    std::vector<uint64_t> buf_;
    char who_[32];

    // -- model helpers (the mutator holds the slot's `busy` flag) -------------

    PageView view(const Slot& s, unsigned p) const { return unpack(s.pages[p].load(std::memory_order_relaxed)); }
    void set_view(Slot& s, unsigned p, const PageView& v) { s.pages[p].store(pack(v), std::memory_order_relaxed); }
    uintptr_t address(const Slot& s, unsigned p) const { return s.base.load(std::memory_order_relaxed) + size_t(p) * w_.page; }
    void* pointer(const Slot& s, unsigned p) const { return reinterpret_cast<void*>(address(s, p)); }
    unsigned npages(const Slot& s) const { return s.npages.load(std::memory_order_relaxed); }

    // The sequence lock: odd while the slot changes.
    void begin_change(Slot& s) { s.seq.fetch_add(1); }
    void end_change(Slot& s) { s.seq.fetch_add(1); }

    // Waits until no accessor can still be acting on a view older than now.
    void grace_period()
    {
        act_.begin("grace period (waiting for accessors)", 0);
        const uint64_t e = w_.epoch.fetch_add(1) + 1;
        for (auto& a : w_.accessors) {
            for (unsigned spins = 0; a->announce.load() < e; ++spins) {
                if (spins < 64)
                    std::this_thread::yield();
                else
                    std::this_thread::sleep_for(std::chrono::microseconds(20));
            }
        }
        act_.end();
    }

    template <typename F>
    auto call(const char* what, uintptr_t a, F&& f)
    {
        act_.begin(what, a);
        auto r = f();
        act_.end();
        w_.ops.fetch_add(1, std::memory_order_relaxed);
        return r;
    }

    // Compares a result with the expected errno (0 = success).
    template <typename T>
    bool expect(const Result<T>& r, int expected, const char* what, unsigned si, uintptr_t a, size_t len)
    {
        const int got = r ? 0 : r.error().code();
        if (got == expected)
            return true;
        failure("%s: %s(%#lx, %zu pages) on slot %u: expected %s, got %s%s%s", who_, what, (unsigned long)a, len / w_.page, si,
            errno_name(expected), errno_name(got), r ? "" : ": ", r ? "" : r.error().message());
        return false;
    }

    // Maximal runs of mapped pages that satisfy `pred`.
    template <typename Pred>
    std::vector<PageRange> runs(const Slot& s, Pred&& pred) const
    {
        std::vector<PageRange> out;
        const unsigned n = npages(s);
        for (unsigned p = 0; p < n;) {
            PageView v = view(s, p);
            if (!v.mapped || !pred(p, v)) {
                ++p;
                continue;
            }
            unsigned q = p + 1;
            while (q < n && view(s, q).mapped && pred(q, view(s, q)))
                ++q;
            out.push_back({ p, q });
            p = q;
        }
        return out;
    }

    // A random sub-range (of at most `max_len` pages) of a random run.
    bool pick_range(const std::vector<PageRange>& rs, unsigned max_len, PageRange* out)
    {
        if (rs.empty())
            return false;
        const PageRange& run = rs[rng_.below(unsigned(rs.size()))];
        unsigned len = 1 + rng_.below(std::min(run.size(), max_len));
        unsigned start = run.a + rng_.below(run.size() - len + 1);
        *out = { start, start + len };
        return true;
    }

    bool any_immutable(const Slot& s, PageRange r) const
    {
        for (unsigned p = r.a; p < r.b; ++p)
            if (view(s, p).immutable)
                return true;
        return false;
    }

    bool page_free(uintptr_t a) const
    {
        return a >= w_.arena_lo && a < w_.arena_hi && w_.owners.find(a) == w_.owners.end();
    }

    bool reserve_pin()
    {
        unsigned now = w_.pinned.load();
        do {
            if (now >= w_.pinned_cap)
                return false;
        } while (!w_.pinned.compare_exchange_weak(now, now + 1));
        return true;
    }

    // Expects the access at `a` to raise SIGSEGV (or not).
    void probe(const char* what, unsigned si, uintptr_t a, bool write, bool should_fault)
    {
        act_.begin(what, a);
        bool ok = write ? guarded_probe_write(reinterpret_cast<uint64_t*>(a)) : guarded_probe_read(reinterpret_cast<const uint64_t*>(a));
        act_.end();
        if (ok == should_fault)
            failure("%s: %s: %s %#lx (slot %u) %s", who_, what, write ? "writing" : "reading", (unsigned long)a, si,
                should_fault ? "did not fault" : "raised SIGSEGV");
    }

    // -- operations -----------------------------------------------------------

    void operate(unsigned si, Slot& s)
    {
        if (!s.live.load(std::memory_order_relaxed)) {
            unsigned r = rng_.below(100);
            if (r < 4)
                map_conflict(si);
            else if (r < 8)
                bad_arguments(si, s);
            else
                map(si, s);
            return;
        }
        unsigned r = rng_.below(100);
        if (si < kHotSlots) {
            // Hot slots exist to make all accessors fault on the same pages,
            // which only happens while those pages keep going away.
            if (r < 30)
                unmap(si, s, true);
            else if (r < 70)
                discard(si, s);
            else if (r < 85)
                protect(si, s);
            else
                rename(si, s);
            return;
        }
        if (r < 8)
            unmap(si, s, true);
        else if (r < 24)
            unmap(si, s, false);
        else if (r < 44)
            protect(si, s);
        else if (r < 68)
            discard(si, s);
        else if (r < 76)
            rename(si, s);
        else if (r < 79)
            make_immutable(si, s);
        else if (r < 84)
            check_region_stats(si, s);
        else if (r < 93)
            hole_is_enoent(si, s);
        else
            bad_arguments(si, s);
    }

    unsigned pick_size(bool hot)
    {
        if (hot)
            return 1 + rng_.below(4);
        unsigned r = rng_.below(100);
        if (r < 50)
            return 1 + rng_.below(8);
        if (r < 85)
            return 9 + rng_.below(24);
        return 33 + rng_.below(kMaxPages - 32);
    }

    void map(unsigned si, Slot& s)
    {
        const bool hot = si < kHotSlots;
        unsigned n = pick_size(hot);
        Access access = Access::ReadWrite, max_access = Access::None;
        unsigned kind = rng_.below(100);
        if (kind < 75) {
        } else if (kind < 85) {
            access = Access::Read, max_access = Access::ReadWrite;
        } else if (kind < 90) {
            access = Access::Read, max_access = Access::Read;
        } else if (kind < 95) {
            access = Access::Read, max_access = Access::ReadExecute;
        } else {
            max_access = Access::ReadWriteExecute;
        }
        const bool immutable = !hot && rng_.percent(3) && reserve_pin();
        if (immutable)
            n = std::min(n, 4u);
        RegionFlags flags = RegionFlags::None;
        if (immutable)
            flags = flags | RegionFlags::Immutable;
        const bool noreserve = rng_.percent(10);
        if (noreserve)
            flags = flags | RegionFlags::NoReserve;
        // Shared regions have their own backing (a memfd) and discard path.
        if (rng_.percent(15))
            flags = flags | RegionFlags::Shared;
        bool stack = rng_.percent(10);
        size_t alignment = 0;
        if (rng_.percent(8))
            alignment = size_t(64) << 10;
        else if (rng_.percent(2))
            alignment = size_t(2) << 20;
        // Sometimes ask for the slot's previous address back.
        uintptr_t fixed = 0;
        if (s.last_base && rng_.percent(20)) {
            fixed = s.last_base;
            stack = false;
            alignment = 0;
        }
        if (stack)
            flags = flags | RegionFlags::Stack;
        const unsigned name = rng_.below(kNameCount);

        MapOptions o;
        o.size = size_t(n) * w_.page;
        o.alignment = alignment;
        o.access = access;
        o.max_access = max_access;
        o.flags = flags;
        o.name = kNames[name];

        std::lock_guard reuse(w_.reuse_lock);
        if (fixed) {
            bool free = true;
            for (unsigned p = 0; p < n && free; ++p)
                free = page_free(fixed + size_t(p) * w_.page);
            o.address = reinterpret_cast<void*>(fixed);
            if (!free) {
                // Taken by another slot (or past the arena's end): refused.
                const bool inside = fixed + o.size <= w_.arena_hi;
                auto r = call("map_anonymous (fixed, taken)", fixed, [&] { return w_.rt.map_anonymous(o); });
                if (r && !inside)
                    failure("%s: map at %#lx past the arena's end succeeded", who_, (unsigned long)fixed);
                else if (inside)
                    expect(r, EEXIST, "map_anonymous (fixed, over a mapped page)", si, fixed, o.size);
                if (r) {
                    // Leave it to nobody: record it so no later check trips on it.
                    for (unsigned p = 0; p < n; ++p)
                        w_.owners[uintptr_t(*r) + size_t(p) * w_.page] = Owner { si, true };
                }
                if (immutable)
                    w_.pinned.fetch_sub(1);
                return;
            }
        }

        begin_change(s);
        auto r = call("map_anonymous", fixed, [&] { return w_.rt.map_anonymous(o); });
        if (!r) {
            failure("%s: map_anonymous(%u pages, align %zu, %s/%s, flags %#x%s) for slot %u failed: %s: %s", who_, n, alignment,
                access_name(access), access_name(max_access), unsigned(flags), fixed ? ", fixed" : "", si,
                errno_name(r.error().code()), r.error().message());
            if (immutable)
                w_.pinned.fetch_sub(1);
            end_change(s);
            return;
        }
        const uintptr_t a = uintptr_t(*r);
        const size_t guard = stack ? w_.page : 0;
        if (a % w_.page || (alignment && a % alignment) || a - guard < w_.arena_lo || a + o.size > w_.arena_hi || (fixed && a != fixed))
            failure("%s: map_anonymous(%u pages, align %zu%s) returned %#lx: misplaced (arena %#lx-%#lx%s)", who_, n, alignment,
                stack ? ", stack" : "", (unsigned long)a, (unsigned long)w_.arena_lo, (unsigned long)w_.arena_hi,
                fixed ? ", asked for a fixed address" : "");
        for (uintptr_t q = a - guard; q < a + o.size; q += w_.page) {
            auto it = w_.owners.find(q);
            if (it != w_.owners.end())
                failure("%s: map_anonymous for slot %u returned %#lx+%zu pages, but page %#lx already belongs to slot %u%s", who_, si,
                    (unsigned long)a, size_t(n), (unsigned long)q, it->second.slot, it->second.guard ? " (a guard page)" : "");
            w_.owners[q] = Owner { si, q < a };
        }
        if (stack) {
            // The guard is reserved but belongs to no region: it faults, and
            // the API does not treat it as mapped.
            void* g = reinterpret_cast<void*>(a - w_.page);
            probe("stack guard page", si, a - w_.page, rng_.percent(50), true);
            if (rng_.percent(50))
                expect(call("unmap (guard)", a - w_.page, [&] { return w_.rt.unmap(g, w_.page); }), ENOENT, "unmap (stack guard page)", si,
                    a - w_.page, w_.page);
            else
                expect(call("protect (guard)", a - w_.page, [&] { return w_.rt.protect(g, w_.page, Access::ReadWrite); }), ENOENT,
                    "protect (stack guard page)", si, a - w_.page, w_.page);
        }

        const uint32_t inc = s.incarnation.load(std::memory_order_relaxed) + 1;
        s.base.store(a, std::memory_order_relaxed);
        s.npages.store(n, std::memory_order_relaxed);
        s.incarnation.store(inc, std::memory_order_relaxed);
        for (unsigned p = 0; p < kMaxPages; ++p) {
            PageView v;
            if (p < n) {
                v.mapped = true;
                v.access = access;
                v.immutable = immutable;
                v.zero_id = w_.new_zero_id();
            }
            set_view(s, p, v);
            s.been_writable[p] = writable(access);
            s.been_executable[p] = has(access, Access::Execute);
            s.name[p] = uint8_t(name);
        }
        s.pinned = immutable;
        s.committed = !noreserve;
        s.guard = stack;
        s.max_access = max_access == Access::None ? access : max_access;
        s.last_base = a;
        s.live.store(true, std::memory_order_relaxed);
        end_change(s);
    }

    // A fixed-address map over a page some slot owns must fail with EEXIST.
    void map_conflict(unsigned si)
    {
        std::lock_guard reuse(w_.reuse_lock);
        if (w_.owners.empty())
            return;
        auto it = w_.owners.begin();
        std::advance(it, rng_.below(unsigned(std::min<size_t>(w_.owners.size(), 16))));
        MapOptions o;
        o.size = w_.page * (1 + rng_.below(3));
        o.address = reinterpret_cast<void*>(it->first);
        const uintptr_t a = it->first;
        if (a + o.size > w_.arena_hi)
            return;
        auto r = call("map_anonymous (fixed, conflicting)", a, [&] { return w_.rt.map_anonymous(o); });
        expect(r, EEXIST, "map_anonymous (fixed, over a mapped page)", si, a, o.size);
        if (r)
            (void)w_.rt.unmap(*r, o.size);
    }

    void unmap(unsigned si, Slot& s, bool full)
    {
        std::lock_guard reuse(w_.reuse_lock);
        auto mutable_runs = runs(s, [](unsigned, const PageView& v) { return !v.immutable; });
        std::vector<PageRange> ranges;
        if (full) {
            ranges = mutable_runs;
        } else {
            PageRange r;
            if (pick_range(mutable_runs, kMaxPages, &r))
                ranges.push_back(r);
        }
        if (ranges.empty())
            return;

        begin_change(s);
        std::vector<bool> done(ranges.size());
        for (size_t i = 0; i < ranges.size(); ++i) {
            const PageRange& r = ranges[i];
            auto res = call("unmap", address(s, r.a), [&] { return w_.rt.unmap(pointer(s, r.a), r.size() * w_.page); });
            done[i] = expect(res, 0, "unmap", si, address(s, r.a), r.size() * w_.page);
        }
        // Accessors that began before the unmap may still touch the range;
        // once they are done it can safely be handed out again.
        grace_period();
        for (size_t i = 0; i < ranges.size(); ++i) {
            if (!done[i])
                continue;
            const PageRange& r = ranges[i];
            probe("access after unmap", si, address(s, r.a + rng_.below(r.size())), rng_.percent(50), true);
            for (unsigned p = r.a; p < r.b; ++p) {
                w_.owners.erase(address(s, p));
                set_view(s, p, PageView {});
            }
            if (r.a == 0 && s.guard) {
                // The guard page goes with the bottom piece of a stack.
                w_.owners.erase(address(s, 0) - w_.page);
                s.guard = false;
            }
        }
        bool live = false;
        for (unsigned p = 0; p < npages(s) && !live; ++p)
            live = view(s, p).mapped;
        s.live.store(live, std::memory_order_relaxed);
        end_change(s);
    }

    int predict_protect(const Slot& s, PageRange r, Access acc) const
    {
        bool imm = false, bw = false, bx = false;
        for (unsigned p = r.a; p < r.b; ++p) {
            imm |= view(s, p).immutable;
            bw |= s.been_writable[p];
            bx |= s.been_executable[p];
        }
        if (imm)
            return EPERM;
        if (!is_subset(acc, s.max_access))
            return EACCES;
        const bool want_w = has(acc, Access::Write), want_x = has(acc, Access::Execute);
        if ((want_w && want_x) || (want_x && bw) || (want_w && bx))
            return EACCES; // W^X, at one time and over time
        return 0;
    }

    void protect(unsigned si, Slot& s)
    {
        // Ranges may include immutable pages, which must be refused.
        auto all = runs(s, [](unsigned, const PageView&) { return true; });
        PageRange r;
        if (!pick_range(all, kMaxPages, &r))
            return;
        static constexpr Access kChoices[] = { Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite, Access::ReadWrite,
            Access::None, Access::None, Access::ReadExecute, Access::ReadWriteExecute };
        const Access acc = kChoices[rng_.below(sizeof kChoices / sizeof kChoices[0])];
        const int expected = predict_protect(s, r, acc);
        const uintptr_t a = address(s, r.a);
        const size_t len = r.size() * w_.page;
        if (expected) {
            // Refused calls must change nothing; accessors keep checking the
            // slot meanwhile, so the sequence stays even.
            auto res = call("protect (refused)", a, [&] { return w_.rt.protect(pointer(s, r.a), len, acc); });
            expect(res, expected, "protect", si, a, len);
            return;
        }
        begin_change(s);
        auto res = call("protect", a, [&] { return w_.rt.protect(pointer(s, r.a), len, acc); });
        if (expect(res, 0, "protect", si, a, len)) {
            for (unsigned p = r.a; p < r.b; ++p) {
                PageView v = view(s, p);
                v.access = acc;
                set_view(s, p, v);
                s.been_writable[p] |= writable(acc);
                s.been_executable[p] |= has(acc, Access::Execute);
            }
            const uintptr_t q = address(s, r.a + rng_.below(r.size())) + 8 * rng_.below(unsigned(w_.words));
            if (!readable(acc))
                probe("read after protect ---", si, q, false, true);
            probe(writable(acc) ? "write after protect rw-" : "write after protect without w", si, q, true, !writable(acc));
        }
        end_change(s);
    }

    void discard(unsigned si, Slot& s)
    {
        auto all = runs(s, [](unsigned, const PageView&) { return true; });
        PageRange r;
        if (!pick_range(all, kMaxPages, &r))
            return;
        const uintptr_t a = address(s, r.a);
        const size_t len = r.size() * w_.page;
        if (any_immutable(s, r)) {
            auto res = call("discard (refused)", a, [&] { return w_.rt.discard(pointer(s, r.a), len); });
            expect(res, EPERM, "discard", si, a, len);
            return;
        }
        // Half the discards race with accessors; the other half first wait
        // until none is in the slot, so that the pages can be checked to read
        // back as zeros (a racing accessor may legitimately write again right
        // after the discard).
        const bool checked = rng_.percent(50);
        begin_change(s);
        if (checked)
            grace_period();
        auto res = call("discard", a, [&] { return w_.rt.discard(pointer(s, r.a), len); });
        if (expect(res, 0, "discard", si, a, len)) {
            for (unsigned p = r.a; p < r.b; ++p) {
                PageView v = view(s, p);
                v.zero_id = w_.new_zero_id();
                set_view(s, p, v);
                if (!checked || !readable(v.access))
                    continue;
                const uintptr_t q = address(s, p);
                act_.begin("read after discard", q);
                bool ok = guarded_read(reinterpret_cast<const uint64_t*>(q), buf_.data(), w_.words);
                act_.end();
                if (!ok) {
                    failure("%s: SIGSEGV reading %#lx (slot %u page %u, %s) after discard", who_, (unsigned long)q, si, p,
                        access_name(v.access));
                    continue;
                }
                verify_page(w_, buf_.data(), si, s.incarnation.load(std::memory_order_relaxed), p, q, v,
                    [](unsigned, uint64_t* base) {
                        *base = 0;
                        return true;
                    },
                    "read after discard (must be zeros)");
                w_.mutator_bytes_verified.fetch_add(w_.page, std::memory_order_relaxed);
            }
        }
        end_change(s);
    }

    // Renaming splits regions without changing what accessors may do, so it
    // runs with the sequence even: accessors keep checking the slot while its
    // regions are cut up underneath them.
    void rename(unsigned si, Slot& s)
    {
        auto all = runs(s, [](unsigned, const PageView&) { return true; });
        PageRange r;
        if (!pick_range(all, kMaxPages, &r))
            return;
        const uintptr_t a = address(s, r.a);
        const size_t len = r.size() * w_.page;
        unsigned name = rng_.below(kNameCount);
        std::string text = kNames[name];
        int expected = any_immutable(s, r) ? EPERM : 0;
        if (rng_.percent(5)) {
            text = rng_.percent(50) ? "bad[name]" : std::string(100, 'n');
            expected = EINVAL; // names are checked before the range
        }
        auto res = call("set_name", a, [&] { return w_.rt.set_name(pointer(s, r.a), len, text); });
        if (expect(res, expected, "set_name", si, a, len) && expected == 0)
            for (unsigned p = r.a; p < r.b; ++p)
                s.name[p] = uint8_t(name);
    }

    void make_immutable(unsigned si, Slot& s)
    {
        if (si < kHotSlots)
            return;
        unsigned immutable_pages = 0;
        for (unsigned p = 0; p < npages(s); ++p)
            immutable_pages += view(s, p).immutable;
        auto all = runs(s, [](unsigned, const PageView&) { return true; });
        PageRange r;
        if (!pick_range(all, 4, &r))
            return;
        const uintptr_t a = address(s, r.a);
        const size_t len = r.size() * w_.page;
        if (any_immutable(s, r)) {
            auto res = call("make_immutable (refused)", a, [&] { return w_.rt.make_immutable(pointer(s, r.a), len); });
            expect(res, EPERM, "make_immutable (already immutable)", si, a, len);
            return;
        }
        // Immutable pages stay mapped for the runtime's life; keep them few.
        if (immutable_pages + r.size() > kMaxImmutablePagesPerSlot)
            return;
        if (!s.pinned && !reserve_pin())
            return;
        begin_change(s);
        auto res = call("make_immutable", a, [&] { return w_.rt.make_immutable(pointer(s, r.a), len); });
        if (expect(res, 0, "make_immutable", si, a, len)) {
            for (unsigned p = r.a; p < r.b; ++p) {
                PageView v = view(s, p);
                v.immutable = true;
                set_view(s, p, v);
            }
            s.pinned = true;
            // Everything that would change the range must now be refused.
            {
                std::lock_guard reuse(w_.reuse_lock);
                auto u = call("unmap (immutable)", a, [&] { return w_.rt.unmap(pointer(s, r.a), len); });
                expect(u, EPERM, "unmap (immutable)", si, a, len);
            }
            auto pr = call("protect (immutable)", a, [&] { return w_.rt.protect(pointer(s, r.a), len, Access::Read); });
            expect(pr, EPERM, "protect (immutable)", si, a, len);
            auto d = call("discard (immutable)", a, [&] { return w_.rt.discard(pointer(s, r.a), len); });
            expect(d, EPERM, "discard (immutable)", si, a, len);
            auto n = call("set_name (immutable)", a, [&] { return w_.rt.set_name(pointer(s, r.a), len, "renamed"); });
            expect(n, EPERM, "set_name (immutable)", si, a, len);
            auto m = call("make_immutable (again)", a, [&] { return w_.rt.make_immutable(pointer(s, r.a), len); });
            expect(m, EPERM, "make_immutable (again)", si, a, len);
        } else if (!s.pinned) {
            w_.pinned.fetch_sub(1);
        }
        end_change(s);
    }

    // region_stats must describe a region that lies inside the slot and
    // agrees with the model page by page.
    void check_region_stats(unsigned si, Slot& s)
    {
        auto all = runs(s, [](unsigned, const PageView&) { return true; });
        PageRange r;
        if (!pick_range(all, 1, &r))
            return;
        const uintptr_t a = address(s, r.a) + 8 * rng_.below(unsigned(w_.words));
        auto res = call("region_stats", a, [&] { return w_.rt.region_stats(reinterpret_cast<void*>(a)); });
        if (!expect(res, 0, "region_stats", si, a, w_.page))
            return;
        const RegionStats& st = *res;
        const uintptr_t lo = address(s, 0), hi = address(s, npages(s));
        if (st.base > a || a - st.base >= st.size || st.base % w_.page || st.size % w_.page || st.base < lo || st.base + st.size > hi) {
            failure("%s: region_stats(%#lx) on slot %u gave region %#lx+%zu pages, not within the slot's %#lx+%u pages", who_,
                (unsigned long)a, si, (unsigned long)st.base, st.size / w_.page, (unsigned long)lo, npages(s));
            return;
        }
        for (uintptr_t q = st.base; q < st.base + st.size; q += w_.page) {
            const unsigned p = unsigned((q - lo) / w_.page);
            const PageView v = view(s, p);
            if (!v.mapped || v.access != st.access || v.immutable != has(st.flags, RegionFlags::Immutable)
                || st.name != kNames[s.name[p]] || st.max_access != s.max_access
                || has(st.flags, RegionFlags::NoReserve) == s.committed) {
                failure("%s: region_stats(%#lx) on slot %u: region %#lx+%zu pages (%s, max %s, %s, name '%s') disagrees with the model at page %u (%s%s, max %s, %s, name '%s')",
                    who_, (unsigned long)a, si, (unsigned long)st.base, st.size / w_.page, access_name(st.access),
                    access_name(st.max_access), has(st.flags, RegionFlags::Immutable) ? "immutable" : "mutable", st.name.c_str(), p,
                    v.mapped ? "" : "unmapped ", access_name(v.access), access_name(s.max_access),
                    v.immutable ? "immutable" : "mutable", kNames[s.name[p]]);
                return;
            }
        }
    }

    // Operations over a range with an unmapped, unowned page must fail with
    // ENOENT and change nothing (accessors keep checking meanwhile).
    void hole_is_enoent(unsigned si, Slot& s)
    {
        std::lock_guard reuse(w_.reuse_lock);
        const unsigned n = npages(s);
        const uintptr_t base = address(s, 0);
        for (unsigned tries = 0; tries < 4; ++tries) {
            const unsigned p = rng_.below(n);
            if (!view(s, p).mapped)
                continue;
            uintptr_t lo;
            if (rng_.percent(50)) {
                const uintptr_t after = base + size_t(p + 1) * w_.page;
                if ((p + 1 < n && view(s, p + 1).mapped) || !page_free(after))
                    continue;
                lo = base + size_t(p) * w_.page;
            } else {
                const uintptr_t before = base + size_t(p) * w_.page - w_.page;
                if ((p > 0 && view(s, p - 1).mapped) || !page_free(before))
                    continue;
                lo = before;
            }
            void* ptr = reinterpret_cast<void*>(lo);
            const size_t len = 2 * w_.page;
            switch (rng_.below(5)) {
            case 0:
                expect(call("unmap (hole)", lo, [&] { return w_.rt.unmap(ptr, len); }), ENOENT, "unmap (over a hole)", si, lo, len);
                break;
            case 1:
                expect(call("protect (hole)", lo, [&] { return w_.rt.protect(ptr, len, Access::Read); }), ENOENT, "protect (over a hole)",
                    si, lo, len);
                break;
            case 2:
                expect(call("discard (hole)", lo, [&] { return w_.rt.discard(ptr, len); }), ENOENT, "discard (over a hole)", si, lo,
                    len);
                break;
            case 3:
                expect(call("set_name (hole)", lo, [&] { return w_.rt.set_name(ptr, len, "hole"); }), ENOENT, "set_name (over a hole)",
                    si, lo, len);
                break;
            default:
                expect(call("make_immutable (hole)", lo, [&] { return w_.rt.make_immutable(ptr, len); }), ENOENT,
                    "make_immutable (over a hole)", si, lo, len);
                break;
            }
            return;
        }
    }

    // Invalid arguments are refused with the documented errno and change
    // nothing.
    void bad_arguments(unsigned si, Slot& s)
    {
        const size_t page = w_.page;
        const bool live = s.live.load(std::memory_order_relaxed);
        const uintptr_t a = live ? address(s, 0) : w_.arena_lo;
        void* p = reinterpret_cast<void*>(a);
        auto bad_map = [&](const MapOptions& o, int expected, const char* what) {
            auto r = call("map_anonymous (bad arguments)", 0, [&] { return w_.rt.map_anonymous(o); });
            expect(r, expected, what, si, uintptr_t(o.address), o.size);
            if (r) // it must not have succeeded; give it back so no check trips on it later
                (void)w_.rt.unmap(*r, o.size);
        };
        MapOptions o;
        o.size = page;
        switch (rng_.below(13)) {
        case 0:
            o.size = 0;
            bad_map(o, EINVAL, "map_anonymous (size 0)");
            break;
        case 1:
            o.size = page + 1;
            bad_map(o, EINVAL, "map_anonymous (size not a page multiple)");
            break;
        case 2:
            o.alignment = 3 * page;
            bad_map(o, EINVAL, "map_anonymous (alignment not a power of two)");
            break;
        case 3:
            o.access = Access::ReadWriteExecute;
            bad_map(o, EACCES, "map_anonymous (W+X)");
            break;
        case 4:
            o.max_access = Access::Read;
            bad_map(o, EINVAL, "map_anonymous (access beyond max_access)");
            break;
        case 5:
            o.name = "a]b";
            bad_map(o, EINVAL, "map_anonymous (bad name)");
            break;
        case 6:
            if (rng_.percent(50)) {
                o.flags = RegionFlags(1u << 20);
                bad_map(o, EINVAL, "map_anonymous (unknown flag)");
            } else {
                // Reserved for the roadmap and refused until it exists (types.h).
                o.flags = RegionFlags::Purgeable;
                bad_map(o, EOPNOTSUPP, "map_anonymous (purgeable)");
            }
            break;
        case 7:
            o.size = w_.arena_hi - w_.arena_lo + page;
            bad_map(o, ENOMEM, "map_anonymous (larger than the arena)");
            break;
        case 8:
            o.address = reinterpret_cast<void*>(w_.arena_hi);
            bad_map(o, EINVAL, "map_anonymous (fixed, outside the arena)");
            break;
        case 9:
            expect(call("unmap (misaligned)", a + 8, [&] { return w_.rt.unmap(reinterpret_cast<char*>(p) + 8, page); }), EINVAL,
                "unmap (misaligned)", si, a + 8, page);
            break;
        case 10:
            expect(call("unmap (outside)", w_.arena_hi, [&] { return w_.rt.unmap(reinterpret_cast<void*>(w_.arena_hi), page); }),
                EINVAL, "unmap (outside the arena)", si, w_.arena_hi, page);
            break;
        case 11:
            expect(call("protect (bad access)", a, [&] { return w_.rt.protect(p, page, Access(8)); }), EINVAL,
                "protect (unknown access bits)", si, a, page);
            break;
        default:
            expect(call("discard (size 0)", a, [&] { return w_.rt.discard(p, 0); }), EINVAL, "discard (size 0)", si, a, 0);
            break;
        }
    }

    // Read-only queries, racing with everything else.
    void query()
    {
        switch (rng_.below(3)) {
        case 0: {
            auto regions = call("regions", 0, [&] { return w_.rt.regions(); });
            for (size_t i = 1; i < regions.size(); ++i)
                if (regions[i].base < regions[i - 1].base + regions[i - 1].size)
                    failure("%s: regions() is not sorted and disjoint: %#lx+%zu then %#lx+%zu", who_, (unsigned long)regions[i - 1].base,
                        regions[i - 1].size, (unsigned long)regions[i].base, regions[i].size);
            break;
        }
        case 1: {
            auto json = call("to_json", 0, [&] { return w_.rt.to_json(); });
            if (json.empty() || json.front() != '{' || json.back() != '}')
                failure("%s: to_json() returned something that is not a JSON object (%zu bytes)", who_, json.size());
            break;
        }
        default:
            (void)call("stats", 0, [&] { return w_.rt.stats(); });
            break;
        }
    }
};

// ---------------------------------------------------------------------------
// Checks between phases (every other thread has been joined)

// Reads every accessible page and checks it exactly where an accessor's last
// write is known to have landed.
uint64_t final_sweep(World& w)
{
    std::vector<uint64_t> buf(w.words);
    uint64_t bytes = 0;
    for (unsigned si = 0; si < w.opt.slots; ++si) {
        Slot& s = w.slots[si];
        if (!s.live.load())
            continue;
        const uintptr_t base = s.base.load();
        const uint32_t inc = s.incarnation.load();
        for (unsigned p = 0; p < s.npages.load(); ++p) {
            const PageView v = unpack(s.pages[p].load());
            if (!v.mapped || !readable(v.access))
                continue;
            const uintptr_t a = base + size_t(p) * w.page;
            if (!guarded_read(reinterpret_cast<const uint64_t*>(a), buf.data(), w.words)) {
                failure("final sweep: SIGSEGV reading %#lx (slot %u page %u), which is mapped %s", (unsigned long)a, si, p,
                    access_name(v.access));
                continue;
            }
            verify_page(w, buf.data(), si, inc, p, a, v,
                [&](unsigned owner, uint64_t* expected) {
                    const Record& r = w.accessors[owner]->records[size_t(si) * kMaxPages + p];
                    if (!(r.valid && r.certain && r.zero_id == v.zero_id))
                        return false;
                    *expected = r.value_base;
                    return true;
                },
                "final sweep");
            bytes += w.page;
        }
    }
    return bytes;
}

// The runtime's region table, region count and commit charge must agree with
// the model.
void check_tables(World& w, const char* when)
{
    auto regions = w.rt.regions();
    auto stats = w.rt.stats();
    size_t region_pages = 0;
    for (const RegionStats& r : regions) {
        for (uintptr_t q = r.base; q < r.base + r.size; q += w.page) {
            ++region_pages;
            auto it = w.owners.find(q);
            if (it == w.owners.end() || it->second.guard) {
                failure("%s: the runtime has region %#lx+%zu pages, but page %#lx is %s in the model", when, (unsigned long)r.base,
                    r.size / w.page, (unsigned long)q, it == w.owners.end() ? "unmapped" : "a guard page");
                break;
            }
            const Slot& s = w.slots[it->second.slot];
            const unsigned p = unsigned((q - s.base.load()) / w.page);
            const PageView v = unpack(s.pages[p].load());
            if (!v.mapped || v.access != r.access || v.immutable != has(r.flags, RegionFlags::Immutable) || r.name != kNames[s.name[p]]) {
                failure("%s: region %#lx+%zu pages (%s, %s, '%s') disagrees with slot %u page %u (%s%s, %s, '%s')", when,
                    (unsigned long)r.base, r.size / w.page, access_name(r.access), has(r.flags, RegionFlags::Immutable) ? "immutable" : "mutable",
                    r.name.c_str(), it->second.slot, p, v.mapped ? "" : "unmapped ", access_name(v.access),
                    v.immutable ? "immutable" : "mutable", kNames[s.name[p]]);
                break;
            }
        }
    }
    size_t model_pages = 0, committed_pages = 0;
    for (unsigned si = 0; si < w.opt.slots; ++si) {
        const Slot& s = w.slots[si];
        for (unsigned p = 0; p < s.npages.load(); ++p) {
            if (unpack(s.pages[p].load()).mapped) {
                ++model_pages;
                committed_pages += s.committed;
            }
        }
    }
    if (region_pages != model_pages)
        failure("%s: the runtime's regions cover %zu pages, the model has %zu mapped", when, region_pages, model_pages);
    if (stats.region_count != regions.size())
        failure("%s: stats().region_count is %zu but regions() lists %zu", when, stats.region_count, regions.size());
    if (stats.committed != committed_pages * w.page)
        failure("%s: stats().committed is %zu bytes, the model has %zu committed pages (%zu bytes)", when, stats.committed,
            committed_pages, committed_pages * w.page);
}

// ---------------------------------------------------------------------------
// Phases

struct PhaseConfig {
    unsigned handler_threads;
    unsigned fault_around_pages;
    const char* disable;
};

// Each phase runs a fresh Runtime in a different configuration: the default
// one; several handler threads with fault-around off, so that many threads
// race to serve single pages; and a large fault-around window with the zero
// page and mseal(2) hidden, so that read faults copy zeros and immutability
// is enforced by the runtime alone.
constexpr PhaseConfig kPhaseConfigs[] = {
    { 1, 16, "" },
    { 4, 1, "" },
    { 2, 64, "zeropage,mseal" },
};

struct Totals {
    double seconds = 0;
    uint64_t ops = 0;
    uint64_t faults = 0;
    uint64_t pages_installed = 0;
    uint64_t bytes = 0;
    uint64_t visits = 0;
    uint64_t stable_visits = 0;
    uint64_t segv = 0;
};

void run_phase(const Options& opt, unsigned phase, unsigned phases, double seconds, Activity* activities, Totals& totals)
{
    const PhaseConfig& pc = kPhaseConfigs[phase % (sizeof kPhaseConfigs / sizeof kPhaseConfigs[0])];
    Config config;
    config.handler_threads = opt.handler_threads ? opt.handler_threads : pc.handler_threads;
    config.fault_around_pages = pc.fault_around_pages;
    config.disable = pc.disable;
    auto created = Runtime::create(config);
    if (!created) {
        std::fprintf(stderr, "stress: FAIL: Runtime::create failed: %s: %s\n", errno_name(created.error().code()),
            created.error().message());
        std::exit(1);
    }
    std::unique_ptr<Runtime> rt = std::move(*created);
    Activity& main_activity = activities[opt.threads + opt.mutators];

    std::string features;
    for (auto& f : rt->features())
        features += (features.empty() ? "" : ",") + f;
    std::printf("stress: phase %u/%u: %.0f s, %u handler thread(s), fault-around %u, hidden '%s', features %s%s\n", phase + 1, phases,
        seconds, config.handler_threads, config.fault_around_pages, pc.disable, features.c_str(),
        rt->user_mode_only() ? " (user-mode-only)" : "");
    std::fflush(stdout);

    {
        World w(opt, *rt);
        w.activities = activities;
        g_arena_lo.store(w.arena_lo);
        g_arena_hi.store(w.arena_hi);
        const uint64_t failures_before = g_failures.load();

        std::vector<std::thread> threads;
        for (unsigned t = 0; t < opt.threads; ++t)
            threads.emplace_back([&w, t, seed = opt.seed ^ (uint64_t(phase) << 40) ^ (t * 0x1000193ull)] { Accessor(w, t, seed).run(); });
        std::vector<std::unique_ptr<Mutator>> mutators;
        for (unsigned m = 0; m < opt.mutators; ++m)
            mutators.push_back(std::make_unique<Mutator>(w, m, opt.seed ^ (uint64_t(phase) << 40) ^ (0xabcdef12345ull + m),
                activities[opt.threads + m]));
        for (auto& m : mutators)
            threads.emplace_back([m = m.get()] { m->run(); });

        const int64_t start = now_ns();
        const int64_t end = start + int64_t(seconds * 1e9);
        int64_t next_report = start + int64_t(10e9);
        for (int64_t now = start; now < end; now = now_ns()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(100, (end - now) / 1'000'000 + 1)));
            if (seconds >= 30 && now_ns() >= next_report) {
                next_report += int64_t(10e9);
                uint64_t bytes = w.mutator_bytes_verified.load();
                for (auto& a : w.accessors)
                    bytes += a->bytes_verified.load();
                std::printf("stress:   %3.0f s: %llu operations, %llu faults served, %llu bytes verified, %llu failures\n",
                    double(now_ns() - start) / 1e9, (unsigned long long)w.ops.load(), (unsigned long long)rt->stats().fault_events,
                    (unsigned long long)bytes, (unsigned long long)g_failures.load());
                std::fflush(stdout);
            }
        }
        w.stop.store(true);
        main_activity.begin("joining threads", 0);
        for (auto& t : threads)
            t.join();
        main_activity.end();
        const double elapsed = double(now_ns() - start) / 1e9;

        main_activity.begin("final sweep", 0);
        uint64_t sweep_bytes = final_sweep(w);
        main_activity.end();
        main_activity.begin("checking tables", 0);
        check_tables(w, "end of phase");
        main_activity.end();

        // Unmap everything that can be, and check the runtime is left with
        // exactly the immutable pages (and their commit charge).
        Mutator cleaner(w, opt.mutators, opt.seed, main_activity);
        cleaner.unmap_everything();
        main_activity.begin("checking tables", 0);
        check_tables(w, "after unmapping everything");
        main_activity.end();

        const RuntimeStats st = rt->stats();
        uint64_t bytes = w.mutator_bytes_verified.load() + sweep_bytes, visits = 0, stable = 0, segv = 0;
        for (auto& a : w.accessors) {
            bytes += a->bytes_verified.load();
            visits += a->visits.load();
            stable += a->stable_visits.load();
            segv += a->segv_caught.load();
        }
        std::printf("stress: phase %u/%u: %.1f s, %llu operations, %llu faults served (%llu pages installed, %llu deduplicated, %llu stale, "
                    "%llu eexist), %llu visits (%llu stable), %llu SIGSEGVs caught, %llu bytes verified, %u immutable slots, %llu failures\n",
            phase + 1, phases, elapsed, (unsigned long long)w.ops.load(), (unsigned long long)st.fault_events,
            (unsigned long long)st.pages_installed, (unsigned long long)st.faults_deduplicated, (unsigned long long)st.stale_faults,
            (unsigned long long)st.eexist, (unsigned long long)visits, (unsigned long long)stable, (unsigned long long)segv,
            (unsigned long long)bytes, w.pinned.load(), (unsigned long long)(g_failures.load() - failures_before));
        std::fflush(stdout);
        totals.seconds += elapsed;
        totals.ops += w.ops.load();
        totals.faults += st.fault_events;
        totals.pages_installed += st.pages_installed;
        totals.bytes += bytes;
        totals.visits += visits;
        totals.stable_visits += stable;
        totals.segv += segv;
    }

    // Destroying the runtime unmaps what is left (the immutable regions stay,
    // as the kernel keeps sealed memory). Watched too: it joins the handler
    // threads.
    main_activity.begin("destroying the runtime", 0);
    rt.reset();
    main_activity.end();
    g_arena_lo.store(0);
    g_arena_hi.store(0);
}

} // namespace

int main(int argc, char** argv)
{
    const Options opt = parse_options(argc, argv);
    unsigned phases = opt.phases;
    if (!phases)
        phases = opt.seconds >= 9 ? 3 : 1;

    install_signal_handlers();
    prepare_thread_for_faults(); // the main thread sweeps and unmaps between phases

    // Activities are labelled once, before the watchdog starts reading them.
    const unsigned activity_count = opt.threads + opt.mutators + 1;
    std::unique_ptr<Activity[]> activities(new Activity[activity_count]);
    for (unsigned i = 0; i < activity_count; ++i) {
        if (i < opt.threads)
            std::snprintf(activities[i].label, sizeof activities[i].label, "accessor %u", i);
        else if (i < opt.threads + opt.mutators)
            std::snprintf(activities[i].label, sizeof activities[i].label, "mutator %u", i - opt.threads);
        else
            std::snprintf(activities[i].label, sizeof activities[i].label, "main thread");
    }
    std::atomic<bool> finished { false };
    std::thread watchdog(run_watchdog, activities.get(), activity_count, int64_t(opt.watchdog_seconds * 1e9), &finished);

    std::printf("stress: %.0f s in %u phase(s), %u accessor threads, %u mutator threads, %u slots, watchdog %.1f s, seed %llu\n",
        opt.seconds, phases, opt.threads, opt.mutators, opt.slots, opt.watchdog_seconds, (unsigned long long)opt.seed);
    std::fflush(stdout);

    Totals totals;
    for (unsigned phase = 0; phase < phases; ++phase)
        run_phase(opt, phase, phases, opt.seconds / phases, activities.get(), totals);

    finished.store(true);
    watchdog.join();

    const uint64_t failures = g_failures.load();
    std::printf("stress: %.0f s, %llu operations, %llu faults served, %llu bytes verified, %llu failures\n", totals.seconds,
        (unsigned long long)totals.ops, (unsigned long long)totals.faults, (unsigned long long)totals.bytes,
        (unsigned long long)failures);
    return failures ? 1 : 0;
}
