/*
 * cudacpu: run CUDA C++ kernels on the CPU, unmodified, for CI (see README.md). This file: the vector types, the
 * error codes, and the engine: one launch runs its blocks one after another on the calling OS thread, and the
 * threads of a block as fibers (cooperative: a fiber runs until it reaches __syncthreads, a warp collective or its
 * end). Warp collectives (shuffles, votes, __syncwarp) wait for the lanes named in their mask; the block barrier
 * waits for every thread that has not exited. Misuse the hardware would not report (a deadlock, a lane outside the
 * mask, lanes that disagree on the mask) fails the launch with cudaErrorLaunchFailure and a message
 * (cudacpu::lastMessage()).
 *
 * Fibers switch by a few lines of assembly on x86-64 (no system call); elsewhere, or with -DCUDACPU_UCONTEXT, by
 * POSIX swapcontext. Header-only C++17, for g++ and clang++ on Linux.
 */
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/mman.h>

#if defined(__x86_64__) && !defined(CUDACPU_UCONTEXT)
#define CUDACPU_ASM_SWITCH 1
#else
#define CUDACPU_ASM_SWITCH 0
#include <ucontext.h>
#endif

// private to each binary: two libraries built with cudacpu in one process keep their own engines
#pragma GCC visibility push(hidden)

// ---- vector types --------------------------------------------------------------------------------------------------

#define CUDACPU_VEC(T, name, a2, a4)                                                                                 \
    struct name##1 { T x; };                                                                                         \
    struct alignas(a2) name##2 { T x, y; };                                                                          \
    struct name##3 { T x, y, z; };                                                                                   \
    struct alignas(a4) name##4 { T x, y, z, w; };                                                                    \
    inline name##1 make_##name##1(T x) { return name##1{x}; }                                                       \
    inline name##2 make_##name##2(T x, T y) { return name##2{x, y}; }                                               \
    inline name##3 make_##name##3(T x, T y, T z) { return name##3{x, y, z}; }                                       \
    inline name##4 make_##name##4(T x, T y, T z, T w) { return name##4{x, y, z, w}; }

CUDACPU_VEC(signed char, char, 2, 4)
CUDACPU_VEC(unsigned char, uchar, 2, 4)
CUDACPU_VEC(short, short, 4, 8)
CUDACPU_VEC(unsigned short, ushort, 4, 8)
CUDACPU_VEC(int, int, 8, 16)
CUDACPU_VEC(unsigned int, uint, 8, 16)
CUDACPU_VEC(long long, longlong, 16, 16)
CUDACPU_VEC(unsigned long long, ulonglong, 16, 16)
CUDACPU_VEC(float, float, 8, 16)
CUDACPU_VEC(double, double, 16, 16)
#undef CUDACPU_VEC

struct dim3
{
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

// ---- errors (the CUDA runtime's codes) -----------------------------------------------------------------------------

enum cudaError
{
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidSymbol = 13,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorLaunchFailure = 719,
    cudaErrorNotSupported = 801,
    cudaErrorUnknown = 999,
};
typedef enum cudaError cudaError_t;

typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;

namespace cudacpu
{

constexpr unsigned kWarpSize = 32;
constexpr unsigned kMaxThreads = 1024;               //!< per block, every GPU since Fermi
constexpr size_t kDefaultDynamicShared = 48 * 1024;  //!< without cudaFuncAttributeMaxDynamicSharedMemorySize
constexpr size_t kMaxDynamicShared = 227 * 1024;     //!< the opt-in limit of sm_90 (sm_87: 163 KB)

enum class Schedule : int
{
    kForward = 0, //!< threads in index order (the default)
    kReverse = 1, //!< threads in reverse index order
    kRandom = 2,  //!< a seeded random order per block
};

namespace detail
{

enum class Wait : uint8_t
{
    kRunnable,
    kBlock, //!< at __syncthreads
    kWarp,  //!< at a warp collective
    kDone,
};

struct Fiber
{
    void* sp = nullptr;
#if !CUDACPU_ASM_SWITCH
    ucontext_t uc;
#endif
    uint3 tid{};
    unsigned warp = 0, lane = 0;
    Wait wait = Wait::kDone;
    unsigned mask = 0;               //!< mask of the warp collective it waits at
    uint64_t value = 0;              //!< its value in that collective
    uint64_t const* lanes = nullptr; //!< every lane's value when the collective completed
    unsigned group = 0;              //!< the lanes that took part
    int count = 0;                   //!< __syncthreads_count's result
    int arrived = 0;                 //!< threads that took part in that __syncthreads
};

constexpr unsigned kSnapshots = 64; //!< warp collectives kept per warp (a lane reads its result before 64 more)

struct Warp
{
    unsigned lanes = 0;   //!< lanes that exist (blockDim may not be a multiple of 32)
    unsigned arrived = 0; //!< lanes waiting at a collective
    unsigned exited = 0;
    unsigned next = 0;    //!< next snapshot
    std::vector<uint64_t> snapshots = std::vector<uint64_t>(kSnapshots * kWarpSize);
};

struct Engine
{
    // the launch
    dim3 grid, block;
    uint3 blockIdx{};
    void (*body)(void*) = nullptr;
    void* arg = nullptr;
    // the block
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    std::vector<unsigned> order;
    Fiber* current = nullptr;
    unsigned alive = 0, atBarrier = 0;
    int barrierCount = 0;
    void* schedulerSp = nullptr;
#if !CUDACPU_ASM_SWITCH
    ucontext_t schedulerUc;
#endif
    // stacks: one per thread, reused by every block and launch
    std::vector<char*> stacks;
    size_t stackBytes = 0;
    // outcome
    bool failed = false;
    std::string message;
    cudaError_t lastError = cudaSuccess;
    // settings
    Schedule schedule = Schedule::kForward;
    uint64_t seed = 0;
    int multiProcessors = 16;
    alignas(256) unsigned char shared[kMaxDynamicShared];
};

inline Engine gEngine;

//! Records the first failure of a launch (the kernel goes on; the launch returns cudaErrorLaunchFailure).
inline void fail(std::string const& what)
{
    Engine& e = gEngine;
    if (!e.failed)
    {
        e.failed = true;
        char where[96];
        if (e.current != nullptr)
            std::snprintf(where, sizeof(where), "block (%u,%u,%u) thread (%u,%u,%u): ", e.blockIdx.x, e.blockIdx.y,
                e.blockIdx.z, e.current->tid.x, e.current->tid.y, e.current->tid.z);
        else
            where[0] = '\0';
        e.message = where + what;
    }
}

// ---- context switch ------------------------------------------------------------------------------------------------

#if CUDACPU_ASM_SWITCH
// cudacpu_switch(save, to): pushes the callee-saved registers (System V x86-64), stores the stack pointer in *save,
// loads `to` and pops the registers saved there. A new fiber's stack is prepared so that the final `ret` enters it.
extern "C" void cudacpu_switch(void** save, void* to);
asm(R"(
    .pushsection .text
    .weak cudacpu_switch
    .hidden cudacpu_switch
    .type cudacpu_switch, @function
cudacpu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cudacpu_switch, .-cudacpu_switch
    .popsection
)");
#endif

inline void toScheduler()
{
    Engine& e = gEngine;
    Fiber* f = e.current;
#if CUDACPU_ASM_SWITCH
    cudacpu_switch(&f->sp, e.schedulerSp);
#else
    swapcontext(&f->uc, &e.schedulerUc);
#endif
}

inline void resume(Fiber& f)
{
    Engine& e = gEngine;
    e.current = &f;
#if CUDACPU_ASM_SWITCH
    cudacpu_switch(&e.schedulerSp, f.sp);
#else
    swapcontext(&e.schedulerUc, &f.uc);
#endif
    e.current = nullptr;
}

// ---- the block barrier and the warp collectives -------------------------------------------------------------------

inline void releaseBlock()
{
    Engine& e = gEngine;
    for (Fiber& f : e.fibers)
        if (f.wait == Wait::kBlock)
        {
            f.wait = Wait::kRunnable;
            f.count = e.barrierCount;
            f.arrived = static_cast<int>(e.atBarrier);
        }
    e.atBarrier = 0;
    e.barrierCount = 0;
}

//! __syncthreads with a predicate: returns how many threads passed a nonzero one.
inline int blockBarrier(int predicate)
{
    Engine& e = gEngine;
    Fiber* f = e.current;
    if (f == nullptr)
    {
        fail("__syncthreads outside a kernel");
        return 0;
    }
    if (e.alive != e.fibers.size())
        fail("__syncthreads reached after other threads of the block exited (undefined in CUDA)");
    e.barrierCount += predicate != 0 ? 1 : 0;
    f->wait = Wait::kBlock;
    if (++e.atBarrier == e.alive)
        releaseBlock(); // the last to arrive goes on without a switch
    else
        toScheduler();
    return f->count;
}

inline void releaseWarp(Warp& w, unsigned group, unsigned mask)
{
    Engine& e = gEngine;
    uint64_t* values = &w.snapshots[(w.next++ % kSnapshots) * kWarpSize];
    Fiber* base = &e.fibers[static_cast<size_t>(e.current->warp) * kWarpSize];
    for (unsigned lane = 0; lane < kWarpSize; ++lane)
    {
        if (!(group >> lane & 1u))
            continue;
        Fiber& f = base[lane];
        if (f.mask != mask)
            fail("lanes of a warp disagree on the mask of a warp collective");
        values[lane] = f.value;
        f.lanes = values;
        f.group = group;
        f.wait = Wait::kRunnable;
    }
    w.arrived &= ~group;
}

//! One lane's part of a warp collective over `mask`: waits for the other lanes named there, then returns every
//! lane's value (valid for the lanes in the calling fiber's `group`).
inline uint64_t const* warpCollective(unsigned mask, uint64_t value)
{
    Engine& e = gEngine;
    Fiber* f = e.current;
    if (f == nullptr)
    {
        fail("warp collective outside a kernel");
        static uint64_t const none[kWarpSize] = {};
        return none;
    }
    Warp& w = e.warps[f->warp];
    unsigned const bit = 1u << f->lane;
    if (!(mask & bit))
        fail("a lane calls a warp collective whose mask does not name it");
    if (mask & ~w.lanes)
        fail("the mask of a warp collective names lanes beyond blockDim");
    if (mask & w.exited)
        fail("the mask of a warp collective names lanes that have exited");
    unsigned const group = (mask | bit) & w.lanes & ~w.exited;
    f->mask = mask;
    f->value = value;
    f->wait = Wait::kWarp;
    w.arrived |= bit;
    if ((w.arrived & group) == group)
        releaseWarp(w, group, mask);
    else
        toScheduler();
    return f->lanes;
}

// ---- fibers --------------------------------------------------------------------------------------------------------

inline void exitFiber()
{
    Engine& e = gEngine;
    Fiber* f = e.current;
    f->wait = Wait::kDone;
    e.warps[f->warp].exited |= 1u << f->lane;
    --e.alive;
    if (e.atBarrier > 0)
        fail("a thread exited while others wait at __syncthreads (undefined in CUDA)");
    if (e.alive > 0 && e.atBarrier == e.alive) // goes on as current GPUs do: exited threads no longer hold it
        releaseBlock();
    toScheduler();
    std::abort(); // never resumed
}

[[noreturn]] inline void fiberMain()
{
    Engine& e = gEngine;
    e.body(e.arg);
    exitFiber();
    std::abort();
}

inline void ensureStacks(size_t count)
{
    Engine& e = gEngine;
    if (e.stackBytes == 0)
    {
        char const* kb = std::getenv("CUDACPU_STACK_KB");
        e.stackBytes = static_cast<size_t>(kb != nullptr ? std::atol(kb) : 256) * 1024;
        if (e.stackBytes < 16 * 1024)
            e.stackBytes = 16 * 1024;
    }
    while (e.stacks.size() < count)
    {
        // reserved, not committed: pages are touched only as deep as a thread's stack goes; a guard page below
        void* p = mmap(nullptr, e.stackBytes + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
            -1, 0);
        if (p == MAP_FAILED)
        {
            std::fprintf(stderr, "cudacpu: cannot map a fiber stack\n");
            std::abort();
        }
        mprotect(p, 4096, PROT_NONE);
        e.stacks.push_back(static_cast<char*>(p));
    }
}

inline void startFiber(Fiber& f, char* stack, size_t bytes)
{
#if CUDACPU_ASM_SWITCH
    // top 16-aligned; frame: r15 r14 r13 r12 rbx rbp (zeros), then fiberMain as the return address, then a pad, so
    // that fiberMain starts with the stack aligned as after a call
    uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + 4096 + bytes) & ~uintptr_t(15);
    void** frame = reinterpret_cast<void**>(top) - 8;
    for (int i = 0; i < 6; ++i)
        frame[i] = nullptr;
    frame[6] = reinterpret_cast<void*>(&fiberMain);
    frame[7] = nullptr;
    f.sp = frame;
#else
    getcontext(&f.uc);
    f.uc.uc_stack.ss_sp = stack + 4096;
    f.uc.uc_stack.ss_size = bytes;
    f.uc.uc_link = nullptr;
    makecontext(&f.uc, reinterpret_cast<void (*)()>(&fiberMain), 0);
#endif
}

inline void makeOrder(unsigned n, uint64_t block)
{
    Engine& e = gEngine;
    e.order.resize(n);
    for (unsigned i = 0; i < n; ++i)
        e.order[i] = e.schedule == Schedule::kReverse ? n - 1 - i : i;
    if (e.schedule == Schedule::kRandom)
    {
        uint64_t state = e.seed * 0x9E3779B97F4A7C15ull + block + 1;
        for (unsigned i = n; i > 1; --i)
        {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            unsigned const j = static_cast<unsigned>((state * 0x2545F4914F6CDD1Dull) >> 33) % i;
            std::swap(e.order[i - 1], e.order[j]);
        }
    }
}

inline void runBlock(uint64_t linearBlock)
{
    Engine& e = gEngine;
    unsigned const n = e.block.x * e.block.y * e.block.z;
    e.fibers.assign(n, Fiber{});
    e.warps.assign((n + kWarpSize - 1) / kWarpSize, Warp{});
    for (unsigned i = 0; i < n; ++i)
    {
        Fiber& f = e.fibers[i];
        f.tid = uint3{i % e.block.x, (i / e.block.x) % e.block.y, i / (e.block.x * e.block.y)};
        f.warp = i / kWarpSize;
        f.lane = i % kWarpSize;
        f.wait = Wait::kRunnable;
        e.warps[f.warp].lanes |= 1u << f.lane;
        startFiber(f, e.stacks[i], e.stackBytes);
    }
    e.alive = n;
    e.atBarrier = 0;
    e.barrierCount = 0;
    makeOrder(n, linearBlock);
    while (e.alive > 0)
    {
        bool ran = false;
        for (unsigned i : e.order)
        {
            if (e.fibers[i].wait != Wait::kRunnable)
                continue;
            resume(e.fibers[i]);
            ran = true;
        }
        if (!ran)
        {
            unsigned block = 0, warp = 0;
            for (Fiber const& f : e.fibers)
            {
                block += f.wait == Wait::kBlock ? 1 : 0;
                warp += f.wait == Wait::kWarp ? 1 : 0;
            }
            char text[160];
            std::snprintf(text, sizeof(text),
                "deadlock in block (%u,%u,%u): %u threads at __syncthreads, %u at a warp collective, %u exited",
                e.blockIdx.x, e.blockIdx.y, e.blockIdx.z, block, warp, n - block - warp);
            fail(text);
            return; // the waiting fibers are abandoned
        }
    }
}

//! Runs body(arg) as every thread of every block. Returns cudaSuccess or the launch's error (also kept for
//! cudaGetLastError).
inline cudaError_t run(dim3 grid, dim3 block, size_t dynamicShared, size_t sharedLimit, void (*body)(void*), void* arg)
{
    Engine& e = gEngine;
    if (e.current != nullptr)
    {
        fail("a kernel launched from a kernel (dynamic parallelism) is not supported");
        return cudaErrorNotSupported;
    }
    uint64_t const threads = uint64_t(block.x) * block.y * block.z;
    bool const badBlock = threads == 0 || threads > kMaxThreads || block.z > 64;
    bool const badGrid = grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535u
        || grid.z > 65535u;
    if (badBlock || badGrid)
    {
        e.lastError = cudaErrorInvalidConfiguration;
        return e.lastError;
    }
    if (dynamicShared > sharedLimit) // what a GPU answers: "invalid argument"
    {
        e.lastError = cudaErrorInvalidValue;
        return e.lastError;
    }
    e.grid = grid;
    e.block = block;
    e.body = body;
    e.arg = arg;
    e.failed = false;
    e.message.clear();
    ensureStacks(threads);
    uint64_t linear = 0;
    for (unsigned z = 0; z < grid.z && !e.failed; ++z)
        for (unsigned y = 0; y < grid.y && !e.failed; ++y)
            for (unsigned x = 0; x < grid.x && !e.failed; ++x, ++linear)
            {
                e.blockIdx = uint3{x, y, z};
                std::memset(e.shared, 0xff, dynamicShared); // shared memory starts as garbage: all-ones (NaN)
                runBlock(linear);
            }
    e.fibers.clear();
    if (e.failed)
    {
        e.lastError = cudaErrorLaunchFailure;
        return e.lastError;
    }
    return cudaSuccess;
}

//! Dynamic shared memory limits set by cudaFuncSetAttribute, per kernel.
struct SharedLimit
{
    void const* kernel;
    size_t bytes;
};
inline std::vector<SharedLimit> gSharedLimits;

inline size_t sharedLimit(void const* kernel)
{
    for (SharedLimit const& l : gSharedLimits)
        if (l.kernel == kernel)
            return l.bytes;
    return kDefaultDynamicShared;
}

template <typename T>
uint64_t toBits(T v)
{
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8, "warp collectives move up to 8 bytes");
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}

template <typename T>
T fromBits(uint64_t b)
{
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}

} // namespace detail

//! A `kernel<<<grid, block, shared, stream>>>(args...)` launch (what translate.py rewrites it into).
template <typename... P>
struct Launch
{
    void (*kernel)(P...);
    dim3 grid, block;
    size_t shared;

    void operator()(P... args) const
    {
        std::tuple<std::decay_t<P>...> params(args...);
        struct Call
        {
            void (*kernel)(P...);
            std::tuple<std::decay_t<P>...>* params;
            static void body(void* p)
            {
                Call* c = static_cast<Call*>(p);
                std::apply(c->kernel, *c->params); // every thread gets its own copy of the arguments
            }
        } call{kernel, &params};
        cudaError_t const err = detail::run(grid, block, shared,
            detail::sharedLimit(reinterpret_cast<void const*>(kernel)), &Call::body, &call);
        if (err != cudaSuccess)
            detail::gEngine.lastError = err;
    }
};

template <typename... P>
Launch<P...> launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t shared = 0, cudaStream_t = nullptr)
{
    return Launch<P...>{kernel, grid, block, shared};
}

//! The base of dynamic shared memory (`extern __shared__ T name[];`, rewritten by translate.py).
inline void* dynamicShared()
{
    return detail::gEngine.shared;
}

//! Order in which a block's threads run between synchronisations (a changed order changes the result only when the
//! kernel has a race: use it to look for missing __syncthreads).
inline void setSchedule(Schedule schedule, uint64_t seed = 0)
{
    detail::gEngine.schedule = schedule;
    detail::gEngine.seed = seed;
}

//! What cudaDeviceGetAttribute(cudaDevAttrMultiProcessorCount) answers (default 16, an AGX Orin).
inline void setMultiProcessorCount(int count)
{
    detail::gEngine.multiProcessors = count;
}

//! Why the last failed launch failed ("" if none).
inline char const* lastMessage()
{
    return detail::gEngine.message.c_str();
}

} // namespace cudacpu

#pragma GCC visibility pop
