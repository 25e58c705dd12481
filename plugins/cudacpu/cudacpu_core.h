/*
 * cudacpu (see README.md): fibers, the scheduler and the launch. One launch runs its blocks one after another on the
 * calling OS thread; a block's threads run as fibers in index order (or reversed, or shuffled: setSchedule) between
 * synchronisations.
 */
#pragma once

#include "cudacpu_engine.h"

#pragma GCC visibility push(hidden)

namespace cudacpu
{
namespace detail
{

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
    f->lowWater = static_cast<char const*>(__builtin_frame_address(0)) - 4096; // this frame and the switch's
    toScheduler(true);
    std::abort(); // never resumed
}

[[noreturn]] inline void fiberMain()
{
    Engine& e = gEngine;
    sanitizerFinish(nullptr, &e.schedulerBottom, &e.schedulerSize); // first entry: learn the scheduler's stack
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
    f.stackBottom = stack + 4096;
    f.stackSize = bytes;
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
            break; // the waiting fibers are abandoned
        }
    }
    for (Fiber const& f : e.fibers) // a no-op unless built with AddressSanitizer
    {
        char const* bottom = static_cast<char const*>(f.stackBottom);
        char const* from = f.wait == Wait::kDone && f.lowWater > bottom ? f.lowWater : bottom;
        sanitizerUnpoison(from, static_cast<size_t>(bottom + f.stackSize - from));
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
