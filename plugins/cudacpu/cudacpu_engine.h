/*
 * cudacpu (see README.md): the engine's state and its synchronisation. The threads of a block are fibers
 * (cooperative: a fiber runs until it reaches __syncthreads, a warp collective or its end). Warp collectives
 * (shuffles, votes, __syncwarp) wait for the lanes named in their mask; the block barrier waits for every thread
 * that has not exited. Misuse the hardware would not report (a deadlock, a lane outside the mask, lanes that
 * disagree on the mask) fails the launch with cudaErrorLaunchFailure and a message (cudacpu::lastMessage()).
 *
 * Fibers switch by a few lines of assembly on x86-64 (no system call); elsewhere, or with -DCUDACPU_UCONTEXT, by
 * POSIX swapcontext. Header-only C++17, for g++ on Linux.
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

#include "cudacpu_types.h"

#if defined(__x86_64__) && !defined(CUDACPU_UCONTEXT)
#define CUDACPU_ASM_SWITCH 1
#else
#define CUDACPU_ASM_SWITCH 0
#include <ucontext.h>
#endif

// AddressSanitizer follows the fibers' stacks when told of every switch (-fsanitize=address runs kernels under it)
#if defined(__SANITIZE_ADDRESS__)
#define CUDACPU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUDACPU_ASAN 1
#endif
#endif
#ifndef CUDACPU_ASAN
#define CUDACPU_ASAN 0
#endif
#if CUDACPU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

// private to each binary: two libraries built with cudacpu in one process keep their own engines
#pragma GCC visibility push(hidden)

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
    void* fakeStack = nullptr;        //!< AddressSanitizer's bookkeeping of this fiber's stack
    void const* stackBottom = nullptr;
    size_t stackSize = 0;
    char const* lowWater = nullptr; //!< below the frames still on its stack when it exited
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
    void* schedulerFakeStack = nullptr;
    void const* schedulerBottom = nullptr;
    size_t schedulerSize = 0;
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

inline void sanitizerStart(void** fakeStack, void const* bottom, size_t size)
{
#if CUDACPU_ASAN
    __sanitizer_start_switch_fiber(fakeStack, bottom, size);
#else
    (void) fakeStack, (void) bottom, (void) size;
#endif
}

//! A stack whose frames never returned (an exited or abandoned fiber's) keeps their redzones in AddressSanitizer's
//! shadow: clear them before the stack is reused.
inline void sanitizerUnpoison(void const* begin, size_t bytes)
{
#if CUDACPU_ASAN
    __asan_unpoison_memory_region(begin, bytes);
#else
    (void) begin, (void) bytes;
#endif
}

inline void sanitizerFinish(void* fakeStack, void const** bottomOld, size_t* sizeOld)
{
#if CUDACPU_ASAN
    __sanitizer_finish_switch_fiber(fakeStack, bottomOld, sizeOld);
#else
    (void) fakeStack, (void) bottomOld, (void) sizeOld;
#endif
}

//! From the current fiber back to the scheduler (for good when `exiting`).
inline void toScheduler(bool exiting = false)
{
    Engine& e = gEngine;
    Fiber* f = e.current;
    sanitizerStart(exiting ? nullptr : &f->fakeStack, e.schedulerBottom, e.schedulerSize);
#if CUDACPU_ASM_SWITCH
    cudacpu_switch(&f->sp, e.schedulerSp);
#else
    swapcontext(&f->uc, &e.schedulerUc);
#endif
    sanitizerFinish(f->fakeStack, &e.schedulerBottom, &e.schedulerSize);
}

inline void resume(Fiber& f)
{
    Engine& e = gEngine;
    e.current = &f;
    sanitizerStart(&e.schedulerFakeStack, f.stackBottom, f.stackSize);
#if CUDACPU_ASM_SWITCH
    cudacpu_switch(&e.schedulerSp, f.sp);
#else
    swapcontext(&e.schedulerUc, &f.uc);
#endif
    sanitizerFinish(e.schedulerFakeStack, nullptr, nullptr);
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

} // namespace detail
} // namespace cudacpu

#pragma GCC visibility pop
