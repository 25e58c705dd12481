/*
 * cudacpu: what device code calls (see README.md): thread indices, barriers, warp shuffles and votes, atomics, cache
 * hints, and the device math functions that glibc lacks. Fibers of one OS thread never run at the same time, so an
 * atomic is a plain read-modify-write; the order of atomics (and so float atomic sums) follows the schedule.
 */
#pragma once

#include "cudacpu_core.h"

#include <chrono>
#include <math.h> // the global isnan, isinf, ... device code calls unqualified

// private to each binary: two libraries built with cudacpu in one process keep their own engines
#pragma GCC visibility push(hidden)

#define threadIdx (static_cast<uint3 const&>(::cudacpu::detail::gEngine.current->tid))
#define blockIdx (static_cast<uint3 const&>(::cudacpu::detail::gEngine.blockIdx))
#define blockDim (static_cast<dim3 const&>(::cudacpu::detail::gEngine.block))
#define gridDim (static_cast<dim3 const&>(::cudacpu::detail::gEngine.grid))
#define warpSize 32

// ---- barriers and fences --------------------------------------------------------------------------------------------

inline void __syncthreads()
{
    cudacpu::detail::blockBarrier(0);
}

inline int __syncthreads_count(int predicate)
{
    return cudacpu::detail::blockBarrier(predicate);
}

inline int __syncthreads_and(int predicate)
{
    int const passed = cudacpu::detail::blockBarrier(predicate);
    return passed == cudacpu::detail::gEngine.current->arrived ? 1 : 0;
}

inline int __syncthreads_or(int predicate)
{
    return cudacpu::detail::blockBarrier(predicate) > 0 ? 1 : 0;
}

inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    cudacpu::detail::warpCollective(mask, 0);
}

inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}

inline void __trap()
{
    std::fprintf(stderr, "cudacpu: __trap() in a kernel\n");
    std::abort();
}

// ---- warp shuffles and votes ----------------------------------------------------------------------------------------

namespace cudacpu
{
namespace detail
{

inline unsigned laneId()
{
    return gEngine.current != nullptr ? gEngine.current->lane : 0;
}

inline bool validWidth(int width)
{
    bool const ok = width >= 1 && width <= 32 && (width & (width - 1)) == 0;
    if (!ok)
        fail("shuffle width must be a power of two in [1, 32]");
    return ok;
}

//! The shuffle: every lane in mask sends `var`, this lane receives lane `src`'s (its own when src < 0).
template <typename T>
T shuffle(unsigned mask, T var, int src)
{
    uint64_t const* lanes = warpCollective(mask, toBits(var));
    if (src < 0 || gEngine.current == nullptr)
        return var;
    if (!(gEngine.current->group >> src & 1u))
    {
        fail("a shuffle reads a lane that is not in its mask");
        return var;
    }
    return fromBits<T>(lanes[src]);
}

template <typename F>
unsigned vote(unsigned mask, int predicate, F combine)
{
    uint64_t const* lanes = warpCollective(mask, predicate != 0 ? 1 : 0);
    unsigned const group = gEngine.current != nullptr ? gEngine.current->group : 0;
    unsigned result = 0;
    for (unsigned lane = 0; lane < kWarpSize; ++lane)
        if (group >> lane & 1u)
            result = combine(result, lane, lanes[lane]);
    return result;
}

} // namespace detail
} // namespace cudacpu

template <typename T>
T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize)
{
    if (!cudacpu::detail::validWidth(width))
        return var;
    int const lane = static_cast<int>(cudacpu::detail::laneId());
    return cudacpu::detail::shuffle(mask, var, (lane & ~(width - 1)) + (srcLane & (width - 1)));
}

template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize)
{
    if (!cudacpu::detail::validWidth(width))
        return var;
    int const lane = static_cast<int>(cudacpu::detail::laneId());
    int const src = (lane & (width - 1)) >= static_cast<int>(delta) ? lane - static_cast<int>(delta) : -1;
    return cudacpu::detail::shuffle(mask, var, src);
}

template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize)
{
    if (!cudacpu::detail::validWidth(width))
        return var;
    int const lane = static_cast<int>(cudacpu::detail::laneId());
    int const src = (lane & (width - 1)) + static_cast<int>(delta) < width ? lane + static_cast<int>(delta) : -1;
    return cudacpu::detail::shuffle(mask, var, src);
}

//! Lanes may read earlier groups of `width` lanes; a lane past its own group (or the warp) reads its own value.
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize)
{
    if (!cudacpu::detail::validWidth(width))
        return var;
    int const lane = static_cast<int>(cudacpu::detail::laneId());
    int const src = lane ^ laneMask;
    bool const past = src >= 32 || src >= (lane & ~(width - 1)) + width;
    return cudacpu::detail::shuffle(mask, var, past ? -1 : src);
}

inline unsigned __ballot_sync(unsigned mask, int predicate)
{
    return cudacpu::detail::vote(mask, predicate,
        [](unsigned acc, unsigned lane, uint64_t v) { return acc | (v != 0 ? 1u << lane : 0u); });
}

inline int __any_sync(unsigned mask, int predicate)
{
    return __ballot_sync(mask, predicate) != 0 ? 1 : 0;
}

inline int __all_sync(unsigned mask, int predicate)
{
    return cudacpu::detail::vote(mask, predicate,
               [](unsigned acc, unsigned, uint64_t v) { return acc | (v == 0 ? 1u : 0u); })
        == 0;
}

//! Lanes of this warp that have not exited (threads of a warp never diverge between collectives here).
inline unsigned __activemask()
{
    cudacpu::detail::Engine& e = cudacpu::detail::gEngine;
    if (e.current == nullptr)
        return 0;
    cudacpu::detail::Warp const& w = e.warps[e.current->warp];
    return w.lanes & ~w.exited;
}

namespace cudacpu
{
namespace detail
{
template <typename T, typename F>
T reduceSync(unsigned mask, T value, F op)
{
    uint64_t const* lanes = warpCollective(mask, toBits(value));
    unsigned const group = gEngine.current != nullptr ? gEngine.current->group : 0;
    bool first = true;
    T acc{};
    for (unsigned lane = 0; lane < kWarpSize; ++lane)
        if (group >> lane & 1u)
        {
            T const v = fromBits<T>(lanes[lane]);
            acc = first ? v : op(acc, v);
            first = false;
        }
    return acc;
}
} // namespace detail
} // namespace cudacpu

inline unsigned __reduce_add_sync(unsigned mask, unsigned v)
{
    return cudacpu::detail::reduceSync(mask, v, [](unsigned a, unsigned b) { return a + b; });
}
inline int __reduce_add_sync(unsigned mask, int v)
{
    return static_cast<int>(__reduce_add_sync(mask, static_cast<unsigned>(v)));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v)
{
    return cudacpu::detail::reduceSync(mask, v, [](unsigned a, unsigned b) { return a < b ? a : b; });
}
inline int __reduce_min_sync(unsigned mask, int v)
{
    return cudacpu::detail::reduceSync(mask, v, [](int a, int b) { return a < b ? a : b; });
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v)
{
    return cudacpu::detail::reduceSync(mask, v, [](unsigned a, unsigned b) { return a > b ? a : b; });
}
inline int __reduce_max_sync(unsigned mask, int v)
{
    return cudacpu::detail::reduceSync(mask, v, [](int a, int b) { return a > b ? a : b; });
}

// ---- atomics (return the old value) --------------------------------------------------------------------------------

#define CUDACPU_ATOMIC(name, T, expr)                                                                                \
    inline T name(T* address, T val)                                                                                \
    {                                                                                                               \
        T const old = *address;                                                                                     \
        *address = (expr);                                                                                          \
        return old;                                                                                                 \
    }

CUDACPU_ATOMIC(atomicAdd, int, old + val)
CUDACPU_ATOMIC(atomicAdd, unsigned int, old + val)
CUDACPU_ATOMIC(atomicAdd, unsigned long long, old + val)
CUDACPU_ATOMIC(atomicAdd, float, old + val)
CUDACPU_ATOMIC(atomicAdd, double, old + val)
CUDACPU_ATOMIC(atomicSub, int, old - val)
CUDACPU_ATOMIC(atomicSub, unsigned int, old - val)
CUDACPU_ATOMIC(atomicExch, int, val)
CUDACPU_ATOMIC(atomicExch, unsigned int, val)
CUDACPU_ATOMIC(atomicExch, unsigned long long, val)
CUDACPU_ATOMIC(atomicExch, float, val)
CUDACPU_ATOMIC(atomicMin, int, val < old ? val : old)
CUDACPU_ATOMIC(atomicMin, unsigned int, val < old ? val : old)
CUDACPU_ATOMIC(atomicMin, long long, val < old ? val : old)
CUDACPU_ATOMIC(atomicMin, unsigned long long, val < old ? val : old)
CUDACPU_ATOMIC(atomicMax, int, val > old ? val : old)
CUDACPU_ATOMIC(atomicMax, unsigned int, val > old ? val : old)
CUDACPU_ATOMIC(atomicMax, long long, val > old ? val : old)
CUDACPU_ATOMIC(atomicMax, unsigned long long, val > old ? val : old)
// float min/max: not in CUDA's own API (kernels build them from atomicCAS); here for kernels that define none
CUDACPU_ATOMIC(atomicMin, float, fminf(old, val))
CUDACPU_ATOMIC(atomicMax, float, fmaxf(old, val))
CUDACPU_ATOMIC(atomicAnd, int, old & val)
CUDACPU_ATOMIC(atomicAnd, unsigned int, old & val)
CUDACPU_ATOMIC(atomicAnd, unsigned long long, old & val)
CUDACPU_ATOMIC(atomicOr, int, old | val)
CUDACPU_ATOMIC(atomicOr, unsigned int, old | val)
CUDACPU_ATOMIC(atomicOr, unsigned long long, old | val)
CUDACPU_ATOMIC(atomicXor, int, old ^ val)
CUDACPU_ATOMIC(atomicXor, unsigned int, old ^ val)
CUDACPU_ATOMIC(atomicXor, unsigned long long, old ^ val)
CUDACPU_ATOMIC(atomicInc, unsigned int, old >= val ? 0u : old + 1u)
CUDACPU_ATOMIC(atomicDec, unsigned int, (old == 0u || old > val) ? val : old - 1u)
#undef CUDACPU_ATOMIC

template <typename T>
T atomicCAS(T* address, T compare, T val)
{
    static_assert(std::is_integral<T>::value, "atomicCAS takes int, unsigned, unsigned long long, unsigned short");
    T const old = *address;
    if (old == compare)
        *address = val;
    return old;
}

// ---- loads and stores with cache hints: plain accesses --------------------------------------------------------------

template <typename T>
T __ldg(T const* p) { return *p; }
template <typename T>
T __ldcg(T const* p) { return *p; }
template <typename T>
T __ldca(T const* p) { return *p; }
template <typename T>
T __ldcs(T const* p) { return *p; }
template <typename T>
T __ldlu(T const* p) { return *p; }
template <typename T>
T __ldcv(T const* p) { return *p; }
template <typename T>
void __stwb(T* p, T v) { *p = v; }
template <typename T>
void __stcg(T* p, T v) { *p = v; }
template <typename T>
void __stcs(T* p, T v) { *p = v; }
template <typename T>
void __stwt(T* p, T v) { *p = v; }

// ---- integer and bit intrinsics -------------------------------------------------------------------------------------

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x)
{
    unsigned r = 0;
    for (int i = 0; i < 32; ++i)
        r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
inline int __mul24(int a, int b) { return a * b; }
inline unsigned __umul24(unsigned a, unsigned b) { return a * b; }
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b)
{
    return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}

inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline unsigned umin(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned umax(unsigned a, unsigned b) { return a > b ? a : b; }

// ---- float intrinsics: IEEE operations; the fast approximations are glibc's exact functions (results differ from a
// GPU's in the last bits: compare those with a tolerance) ----------------------------------------------------------

inline float __int_as_float(int x) { return cudacpu::detail::fromBits<float>(static_cast<uint32_t>(x)); }
inline int __float_as_int(float x) { return static_cast<int>(static_cast<uint32_t>(cudacpu::detail::toBits(x))); }
inline float __uint_as_float(unsigned x) { return cudacpu::detail::fromBits<float>(x); }
inline unsigned __float_as_uint(float x) { return static_cast<uint32_t>(cudacpu::detail::toBits(x)); }
inline double __longlong_as_double(long long x) { return cudacpu::detail::fromBits<double>(static_cast<uint64_t>(x)); }
inline long long __double_as_longlong(double x) { return static_cast<long long>(cudacpu::detail::toBits(x)); }

inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __frsqrt_rn(float a) { return 1.0f / sqrtf(a); }
inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float a) { return expf(a); }
inline float __exp10f(float a) { return powf(10.0f, a); }
inline float __logf(float a) { return logf(a); }
inline float __log2f(float a) { return log2f(a); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __sinf(float a) { return sinf(a); }
inline float __cosf(float a) { return cosf(a); }
inline float __tanf(float a) { return tanf(a); }
inline float __saturatef(float a) { return a != a ? 0.0f : (a < 0.0f ? 0.0f : (a > 1.0f ? 1.0f : a)); }
inline int __float2int_rn(float a) { return static_cast<int>(nearbyintf(a)); }
inline int __float2int_rz(float a) { return static_cast<int>(a); }
inline int __float2int_rd(float a) { return static_cast<int>(floorf(a)); }
inline int __float2int_ru(float a) { return static_cast<int>(ceilf(a)); }
inline unsigned __float2uint_rn(float a) { return static_cast<unsigned>(nearbyintf(a)); }
inline float __int2float_rn(int a) { return static_cast<float>(a); }
inline float __uint2float_rn(unsigned a) { return static_cast<float>(a); }

inline long long clock64()
{
    return std::chrono::steady_clock::now().time_since_epoch().count();
}

#pragma GCC visibility pop
