/*
 * Sizes, scratch layout and token access of the fused BAT merge stage (see batMerge.h for the phases).
 * Compiles as CUDA C++17 (nvcc >= 11.4) and as plain C++17, where __host__/__device__ vanish.
 */
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define TDM_HD __host__ __device__
#else
#define TDM_HD
#endif
#if defined(__NVCC__) && defined(__CUDA_ARCH__) // nvcc's device pass; host compilers never see the pragma
#define TDM_UNROLL _Pragma("unroll")
#else
#define TDM_UNROLL
#endif

namespace tdm
{

//! The fixed sizes of one stage (Stage in tdm_edge/reduce/schedule.py): n tokens in (CLS + n-1 patches) of c
//! channels, keep = K attentive, pairs = r matched, clusters = M, knn = k of the density.
struct BatSizes
{
    int32_t n;
    int32_t c;
    int32_t keep;
    int32_t pairs;
    int32_t clusters;
    int32_t knn;
};

TDM_HD inline int32_t patchCount(BatSizes const& s) { return s.n - 1; }
TDM_HD inline int32_t countA(BatSizes const& s) { return (s.keep + 1) / 2; } // att[:, 0::2]
TDM_HD inline int32_t countB(BatSizes const& s) { return s.keep / 2; }       // att[:, 1::2]
TDM_HD inline int32_t countInattentive(BatSizes const& s) { return s.n - 1 - s.keep; }
TDM_HD inline int32_t knnCount(BatSizes const& s) // topk(k=min(k, length))
{
    return s.knn < countInattentive(s) ? s.knn : countInattentive(s);
}
//! Tokens out: CLS + Kb merged + (Ka - r) unmatched + M clusters (1 + K when M == r).
TDM_HD inline int32_t outputTokens(BatSizes const& s) { return 1 + s.keep - s.pairs + s.clusters; }

//! Largest sizes accepted: every item count of a phase (at most n * c or n * n) stays far inside int32_t.
constexpr int32_t kMaxTokens = 16385;   // 128 x 128 patches + CLS
constexpr int32_t kMaxChannels = 16384;

//! 0 when the sizes are a stage the PyTorch reference (tdm_edge/reduce/patch.py reduce_tokens) can compute, else a
//! code for batMergeSizeError(). The reference needs a B token (keep >= 2: bipartite_match's argmax over an empty
//! B set fails) and an inattentive token (squared_distances cannot reshape an empty set).
TDM_HD inline int32_t validateSizes(BatSizes const& s)
{
    if (s.n < 3 || s.c < 1)
        return 1;
    if (s.keep < 2 || s.keep > s.n - 2)
        return 2;
    if (s.pairs < 0 || s.pairs > countA(s))
        return 3;
    if (s.clusters < 1 || s.clusters > countInattentive(s))
        return 4;
    if (s.knn < 1)
        return 5;
    if (s.n > kMaxTokens || s.c > kMaxChannels)
        return 6;
    return 0;
}

inline char const* batMergeSizeError(int32_t code)
{
    switch (code)
    {
    case 0: return "ok";
    case 1: return "need n >= 3 tokens and c >= 1 channels";
    case 2: return "keep must be in [2, n-2] (a B token and an inattentive token are needed)";
    case 3: return "pairs must be in [0, ceil(keep/2)]";
    case 4: return "clusters must be in [1, n-1-keep]";
    case 5: return "knn must be >= 1";
    case 6: return "n must be <= 16385 tokens and c <= 16384 channels";
    default: return "unknown size error";
    }
}

//! Scratch of one image: every intermediate of the reference that the later phases read.
struct Workspace
{
    float* dots;    // [Ka, Kb] a @ b^T
    float* normA;   // [Ka] |a|
    float* normB;   // [Kb] |b|
    float* gram;    // [L, L] (x_in @ x_in^T) * -2
    float* d2;      // [L, L] squared_distances
    float* best;    // [Ka] scores.amax(-1)
    float* density; // [L]
    float* score;   // [L] density * delta
    float* total;   // [Kb] wb + sum of the joining A weights
    float* weight;  // [M] cluster weight sums
    float* mergeCoef;   // [Kb, r] merge_matched's weights / total
    float* selfCoef;    // [Kb] wb / total
    float* clusterCoef; // [M, L] combine's normalised assignment * w_in
    int32_t* order;    // [n-1] argsort_desc(importance): att = order[:K], inatt = order[K:]
    int32_t* partner;  // [Ka] scores.argmax(-1)
    int32_t* matched;  // [Ka] 1 when rank < r
    int32_t* src;      // [r] Matching.src (A order)
    int32_t* dst;      // [r] Matching.dst
    int32_t* unm;      // [Ka - r] Matching.unm (A order)
    int32_t* centres;  // [M]
    int32_t* labels;   // [L] cluster of every inattentive token
};

//! Bytes of scratch per image (all entries are 4 bytes, so any 4-byte aligned base works).
TDM_HD inline size_t workspaceBytes(BatSizes const& s)
{
    size_t const ka = countA(s), kb = countB(s), l = countInattentive(s), m = s.clusters, r = s.pairs;
    size_t const floats = ka * kb + ka + kb + 2 * l * l + ka + 2 * l + kb + m + kb * r + kb + m * l;
    size_t const ints = (s.n - 1) + 2 * ka + 2 * r + (ka - r) + m + l;
    return 4 * (floats + ints);
}

TDM_HD inline Workspace workspaceAt(BatSizes const& s, void* base)
{
    size_t const ka = countA(s), kb = countB(s), l = countInattentive(s), m = s.clusters, r = s.pairs;
    Workspace w{};
    float* f = static_cast<float*>(base);
    w.dots = f; f += ka * kb;
    w.normA = f; f += ka;
    w.normB = f; f += kb;
    w.gram = f; f += l * l;
    w.d2 = f; f += l * l;
    w.best = f; f += ka;
    w.density = f; f += l;
    w.score = f; f += l;
    w.total = f; f += kb;
    w.weight = f; f += m;
    w.mergeCoef = f; f += kb * r;
    w.selfCoef = f; f += kb;
    w.clusterCoef = f; f += m * l;
    int32_t* i = reinterpret_cast<int32_t*>(f);
    w.order = i; i += s.n - 1;
    w.partner = i; i += ka;
    w.matched = i; i += ka;
    w.src = i; i += r;
    w.dst = i; i += r;
    w.unm = i; i += ka - r;
    w.centres = i; i += m;
    w.labels = i;
    return w;
}

TDM_HD inline float toFloat(float v) { return v; }
TDM_HD inline void fromFloat(float v, float* out) { *out = v; }
#if defined(__CUDACC__)
TDM_HD inline float toFloat(__half v) { return __half2float(v); }
TDM_HD inline void fromFloat(float v, __half* out) { *out = __float2half(v); }
#endif

//! One image: tokens x [n, c] (row 0 = CLS), importance [n-1], output [outputTokens, c], its scratch.
template <typename T>
struct Image
{
    BatSizes s;
    T const* x;
    T const* importance;
    T* out;
    Workspace ws;
};

// Token rows of the three sets (merge.gather_tokens(x, idx, offset=1)): patch p is row p + 1 of x.
template <typename T>
TDM_HD inline T const* rowA(Image<T> const& im, int32_t t) { return im.x + size_t(im.ws.order[2 * t] + 1) * im.s.c; }
template <typename T>
TDM_HD inline T const* rowB(Image<T> const& im, int32_t j) { return im.x + size_t(im.ws.order[2 * j + 1] + 1) * im.s.c; }
template <typename T>
TDM_HD inline T const* rowIn(Image<T> const& im, int32_t l)
{
    return im.x + size_t(im.ws.order[im.s.keep + l] + 1) * im.s.c;
}
template <typename T>
TDM_HD inline float weightA(Image<T> const& im, int32_t t) { return toFloat(im.importance[im.ws.order[2 * t]]); }
template <typename T>
TDM_HD inline float weightB(Image<T> const& im, int32_t j) { return toFloat(im.importance[im.ws.order[2 * j + 1]]); }
template <typename T>
TDM_HD inline float weightIn(Image<T> const& im, int32_t l) { return toFloat(im.importance[im.ws.order[im.s.keep + l]]); }

// ---- total orders: what torch's sorts and reductions do, for every float including NaN and +-Inf -------------
// IEEE comparisons alone are not an order once a NaN appears (every comparison with it is false), and a rank
// counted with them need not be a permutation. These put NaN where torch does and break every tie by index, so
// each is a strict total order on (value, index) pairs: ranks are a permutation and indices stay in range
// whatever the values. -0 and +0 are equal (a tie), as in torch.

TDM_HD inline bool isNan(float v) { return v != v; }

//! (u at j) comes before (v at i) in torch.sort(descending=True, stable=True) and topk(largest=True): NaN first,
//! then larger values, equal values (and NaNs among themselves) by lower index. Also argmax's rule (first NaN, else
//! the first maximum): scan left to right and take j when beforeDesc(u, j, best, at).
TDM_HD inline bool beforeDesc(float u, int32_t j, float v, int32_t i)
{
    bool const un = isNan(u), vn = isNan(v);
    if (un != vn)
        return un;
    if (!un && u != v)
        return u > v;
    return j < i;
}

//! (u at j) comes before (v at i) in topk(largest=False): smaller values first, NaN last, ties by lower index.
TDM_HD inline bool beforeAsc(float u, int32_t j, float v, int32_t i)
{
    bool const un = isNan(u), vn = isNan(v);
    if (un != vn)
        return vn;
    if (!un && u != v)
        return u < v;
    return j < i;
}

//! argmin's rule (torch.argmin): the first NaN if there is one, else the first minimum.
TDM_HD inline bool beforeArgmin(float u, int32_t j, float v, int32_t i)
{
    bool const un = isNan(u), vn = isNan(v);
    if (un != vn)
        return un;
    if (!un && u != v)
        return u < v;
    return j < i;
}

//! amax/amin propagate NaN (torch.amax, torch.amin, clamp_min).
TDM_HD inline float maxNan(float a, float b) { return isNan(a) || a > b ? a : b; }
TDM_HD inline float clampMin0(float v) { return v < 0.f ? 0.f : v; } // NaN stays NaN

//! exp(x) from + - * / and ldexpf alone, so the GPU (nvcc --fmad=false) and the CPU (-ffp-contract=off) round it
//! identically, which the libraries' expf do not promise (CUDA's is within 2 ulp, glibc's within 1). Cody-Waite
//! reduction x = k ln2 + r, |r| <= ln2/2, then exp(r) by its Taylor series to r^8 (truncation < 0.1 ulp): within
//! 1.2 ulp of exp (checked against double exp over the normal range). NaN stays NaN, overflow gives +Inf, underflow 0 (through subnormals, as ldexpf rounds).
TDM_HD inline float expPortable(float x)
{
    if (isNan(x))
        return x;
    if (x > 88.72283935546875f)
        return 1.0f / 0.0f;
    if (x < -104.0f)
        return 0.0f;
    float const k = floorf(x * 1.44269502162933349609375f + 0.5f); // round(x / ln2), |k| <= 150
    float const r = (x - k * 0.693145751953125f) - k * 1.428606765330187045e-06f; // ln2 = hi + lo, k * hi exact
    float p = 1.0f / 40320.0f;
    p = p * r + 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return ldexpf(p, static_cast<int>(k));
}

//! Place of value i in the stable descending sort of values [count] (sort_desc / argsort_desc): a permutation of
//! [0, count) over i, whatever the values.
TDM_HD inline int32_t rankDesc(float const* values, int32_t count, int32_t i)
{
    int32_t rank = 0;
    float const v = values[i];
    for (int32_t j = 0; j < count; ++j)
        rank += beforeDesc(values[j], j, v, i) ? 1 : 0;
    return rank;
}

} // namespace tdm
