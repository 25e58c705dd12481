/*
 * One BAT pruning stage (decouple, match, cluster, combine) for one image, written once for the GPU and the CPU.
 *
 * Mirrors tdm_edge/reduce/patch.py (reduce_tokens, method "bat") and tdm_edge/reduce/merge.py step for step, with
 * the same names and the same order rules, for every float input (NaN and +-Inf included; batMergeTypes.h): every
 * sort is torch's stable descending sort (NaN first, equal values keep the lower index first), argmax/argmin take
 * the first NaN or else the first extreme, amax/amin and clamp_min propagate NaN, DPC-kNN works on squared distances
 * whose diagonal is exactly zero, and the output order is CLS, B tokens merged with their A partners, unmatched A
 * tokens (in importance order), cluster tokens. Every rank is a permutation by construction, so no index leaves its
 * range whatever the input (a NaN importance, a zero token: cosine 0/0 = NaN, as in the reference).
 *
 * The work is split into nine phases of items (a token, a pair of tokens, an output value); between phases all
 * threads of an image synchronise. The host (batMergeHost below, used by the CPU tests) runs every item with the
 * functions here, one after the other. The CUDA launcher (batMergeKernel.cu) runs them as five kernels: decouple,
 * the dot products (as shared-memory tiles) and the per-row reductions over the grid, phases 4-8 in one block per
 * image, the combine over the grid; where it splits an item over a warp it computes the same value (exact integer
 * counts, total-order extremes, dot products in dotLanes()' order). Selection arithmetic is fp32 whatever the token
 * type; docs/kernel.md has the design, the rounding rules and the performance model.
 *
 * Compiles as CUDA C++17 (nvcc >= 11.4) and as plain C++17 (g++/clang++), where __host__/__device__ vanish.
 */
#pragma once

#include "batMergeTypes.h"

namespace tdm
{

// ---- phase 1: decouple(importance, keep): the stable descending order of the patch tokens -----------------------

template <typename T>
TDM_HD inline void decoupleItem(Image<T> const& im, int32_t i)
{
    int32_t const count = patchCount(im.s);
    float const v = toFloat(im.importance[i]);
    int32_t rank = 0;
    for (int32_t j = 0; j < count; ++j)
        rank += beforeDesc(toFloat(im.importance[j]), j, v, i) ? 1 : 0;
    im.ws.order[rank] = i; // rank is a permutation of [0, count) over i (beforeDesc is a total order)
}

// ---- phase 2: bipartite_match's a @ b^T and norms; squared_distances' Gram product -------------------------------
// Every dot product is summed in one fixed order, on both targets: kLanes partial sums (partial l takes channels
// l, l + 32, ... with fmaf, as the lanes of a warp would), then the partials added pairwise as a tree (steps 16, 8,
// 4, 2, 1: what lane 0 holds after a __shfl_xor_sync butterfly). accumulateChunk() adds one chunk of kLanes channels
// to the partials; the host feeds it rows straight from x, the device from tiles in shared memory.

constexpr int32_t kLanes = 32;

enum class DotKind : int32_t
{
    kMatch, // dots[t, j] = a_t . b_j
    kNormA, // normA[t] = |a_t|
    kNormB, // normB[j] = |b_j|
    kGram,  // gram[i, j] = (x_i . x_j) * -2
};

template <typename T>
struct DotItem
{
    T const* u;
    T const* v;
    float* dst;
    DotKind kind;
};

template <typename T>
TDM_HD inline DotItem<T> similarityItem(Image<T> const& im, int32_t item)
{
    int32_t const ka = countA(im.s), kb = countB(im.s), l = countInattentive(im.s);
    if (item < ka * kb)
        return {rowA(im, item / kb), rowB(im, item % kb), im.ws.dots + item, DotKind::kMatch};
    item -= ka * kb;
    if (item < ka)
        return {rowA(im, item), rowA(im, item), im.ws.normA + item, DotKind::kNormA};
    item -= ka;
    if (item < kb)
        return {rowB(im, item), rowB(im, item), im.ws.normB + item, DotKind::kNormB};
    item -= kb;
    return {rowIn(im, item / l), rowIn(im, item % l), im.ws.gram + item, DotKind::kGram};
}

//! partial[l] += u[l] * v[l] (fmaf) for the first `count` (<= kLanes) channels of a chunk.
template <typename U, typename V>
TDM_HD inline void accumulateChunk(float (&partial)[kLanes], U const* u, V const* v, int32_t count)
{
    if (count == kLanes) // a whole chunk: no test per channel (lets nvcc load shared memory 16 bytes at a time)
    {
        TDM_UNROLL
        for (int32_t l = 0; l < kLanes; ++l)
            partial[l] = fmaf(toFloat(u[l]), toFloat(v[l]), partial[l]);
        return;
    }
    TDM_UNROLL
    for (int32_t l = 0; l < kLanes; ++l)
        if (l < count)
            partial[l] = fmaf(toFloat(u[l]), toFloat(v[l]), partial[l]);
}

//! The partials added as a tree: lane 0's value after the butterfly (a + b == b + a exactly, so lane 0 and lane
//! `offset` hold the same bits at every step).
TDM_HD inline float sumLanes(float (&partial)[kLanes])
{
    TDM_UNROLL
    for (int32_t offset = kLanes / 2; offset > 0; offset /= 2)
    {
        TDM_UNROLL
        for (int32_t l = 0; l < offset; ++l)
            partial[l] = partial[l] + partial[l + offset];
    }
    return partial[0];
}

TDM_HD inline float finishDot(float sum, DotKind kind)
{
    switch (kind)
    {
    case DotKind::kNormA:
    case DotKind::kNormB: return sqrtf(sum);
    case DotKind::kGram: return sum * -2.0f;
    default: return sum;
    }
}

//! u . v over c channels in the fixed order above, straight from the token rows.
template <typename T>
TDM_HD inline float dotLanes(T const* u, T const* v, int32_t c)
{
    float partial[kLanes] = {};
    for (int32_t base = 0; base < c; base += kLanes)
        accumulateChunk(partial, u + base, v + base, c - base < kLanes ? c - base : kLanes);
    return sumLanes(partial);
}

template <typename T>
TDM_HD inline void similarityItemHost(Image<T> const& im, int32_t item)
{
    DotItem<T> const d = similarityItem(im, item);
    *d.dst = finishDot(dotLanes(d.u, d.v, im.s.c), d.kind);
}

template <typename T>
TDM_HD inline int32_t similarityItems(Image<T> const& im)
{
    int32_t const ka = countA(im.s), kb = countB(im.s), l = countInattentive(im.s);
    return ka * kb + ka + kb + l * l;
}

// ---- phase 3: best partner of every A token; squared distances, kNN density of every inattentive token ----------

template <typename T>
TDM_HD inline void partnerDensityItem(Image<T> const& im, int32_t item)
{
    int32_t const ka = countA(im.s), kb = countB(im.s), l = countInattentive(im.s);
    if (item < ka)
    {
        // scores = (a @ b^T) / (|a| |b|) (0/0 = NaN for a zero token, as in the reference);
        // partner = argmax (first NaN, else first maximum), best = amax (NaN if any)
        int32_t partner = 0;
        float best = im.ws.dots[item * kb] / (im.ws.normA[item] * im.ws.normB[0]);
        for (int32_t j = 1; j < kb; ++j)
        {
            float const score = im.ws.dots[item * kb + j] / (im.ws.normA[item] * im.ws.normB[j]);
            if (beforeDesc(score, j, best, partner))
            {
                best = score;
                partner = j;
            }
        }
        im.ws.partner[item] = partner;
        im.ws.best[item] = best;
        return;
    }
    int32_t const i = item - ka;
    // squared_distances: (sq_i + sq_j) + gram_ij clamped at 0 (NaN stays), sq read off the diagonal
    float const* gram = im.ws.gram;
    float* d2 = im.ws.d2 + size_t(i) * l;
    float const sq_i = gram[i * l + i] * -0.5f;
    for (int32_t j = 0; j < l; ++j)
        d2[j] = clampMin0((sq_i + gram[j * l + j] * -0.5f) + gram[i * l + j]);
    // density = exp(-mean of the k smallest / c): topk(largest=False) picks them in beforeAsc order (NaN last);
    // pass p takes the first entry after the one pass p-1 took, so the sum runs in topk's ascending order
    int32_t const k = knnCount(im.s);
    float sum = 0.f;
    int32_t taken = -1;
    float takenValue = 0.f;
    for (int32_t pass = 0; pass < k; ++pass)
    {
        int32_t pick = -1;
        float pickValue = 0.f;
        for (int32_t j = 0; j < l; ++j)
        {
            bool const after = taken < 0 || beforeAsc(takenValue, taken, d2[j], j);
            if (after && (pick < 0 || beforeAsc(d2[j], j, pickValue, pick)))
            {
                pick = j;
                pickValue = d2[j];
            }
        }
        sum += pickValue; // k <= l, so every pass finds one
        taken = pick;
        takenValue = pickValue;
    }
    im.ws.density[i] = expPortable((sum / float(k)) * (-1.0f / float(im.s.c)));
}

// ---- phase 4: which edges are among the r best; delta and score of every inattentive token -----------------------

template <typename T>
TDM_HD inline void edgeDeltaItem(Image<T> const& im, int32_t item)
{
    int32_t const ka = countA(im.s), l = countInattentive(im.s);
    if (item < ka)
    {
        im.ws.matched[item] = rankDesc(im.ws.best, ka, item) < im.s.pairs ? 1 : 0;
        return;
    }
    int32_t const i = item - ka;
    // delta_i = min d2_ij over tokens j denser than i (j < i: rho_j >= rho_i, else rho_j > rho_i), row max if none
    float const* d2 = im.ws.d2 + size_t(i) * l;
    float const rho = im.ws.density[i];
    // torch.where(denser, d2, row_max).amin(): NaN anywhere in the row makes row_max, and so delta, NaN
    // (j == i is never denser, so row_max always takes part)
    float rowMax = d2[0];
    for (int32_t j = 1; j < l; ++j)
        rowMax = maxNan(d2[j], rowMax);
    float delta = rowMax;
    for (int32_t j = 0; j < l; ++j)
    {
        float const rj = im.ws.density[j];
        bool const denser = j < i ? rj >= rho : rj > rho; // IEEE comparisons, as the reference's ge/gt
        if (denser && d2[j] < delta)
            delta = d2[j];
    }
    im.ws.score[i] = rho * sqrtf(delta);
}

// ---- phase 5: Matching (src, dst, unm in A order); the M best-scoring tokens are the centres ---------------------

template <typename T>
TDM_HD inline void matchingCentreItem(Image<T> const& im, int32_t item)
{
    int32_t const ka = countA(im.s), l = countInattentive(im.s);
    if (item < ka)
    {
        int32_t const mine = im.ws.matched[item];
        int32_t slot = 0; // A tokens before this one in the same group
        for (int32_t t = 0; t < item; ++t)
            slot += im.ws.matched[t] == mine ? 1 : 0;
        if (mine)
        {
            im.ws.src[slot] = item;
            im.ws.dst[slot] = im.ws.partner[item];
        }
        else
            im.ws.unm[slot] = item;
        return;
    }
    int32_t const i = item - ka;
    int32_t const rank = rankDesc(im.ws.score, l, i);
    if (rank < im.s.clusters)
        im.ws.centres[rank] = i;
}

//! An entry of the reference's 0/1 assignment matrices (assignment(), one_hot_rows()): 1 when `to` is `row`.
TDM_HD inline float joins(int32_t to, int32_t row) { return to == row ? 1.0f : 0.0f; }

// ---- phase 6: nearest centre of every inattentive token; weight sum of every merged B token ----------------------

template <typename T>
TDM_HD inline void labelTotalItem(Image<T> const& im, int32_t item)
{
    int32_t const kb = countB(im.s), l = countInattentive(im.s);
    if (item < l)
    {
        // argmin over centres of d2 (a centre joins itself: -1), the first NaN or else the first minimum
        float const* d2 = im.ws.d2 + size_t(item) * l;
        int32_t label = 0;
        float nearest = 0.f;
        for (int32_t m = 0; m < im.s.clusters; ++m)
        {
            int32_t const centre = im.ws.centres[m];
            float const v = centre == item ? -1.0f : d2[centre];
            if (m == 0 || beforeArgmin(v, m, nearest, label))
            {
                nearest = v;
                label = m;
            }
        }
        im.ws.labels[item] = label;
        return;
    }
    // merge_matched: total = wb + (joins * w_src).sum(-1), joins[j, q] = 1 when src token q joins j, else 0. Every
    // q takes part, as in the reference, where 0 * NaN (a NaN or infinite weight) is NaN for every B token.
    int32_t const j = item - l;
    float joined = 0.f;
    for (int32_t q = 0; q < im.s.pairs; ++q)
        joined += joins(im.ws.dst[q], j) * weightA(im, im.ws.src[q]);
    im.ws.total[j] = weightB(im, j) + joined;
    (void) kb;
}

// ---- phase 7: weight sum of every cluster (combine's row sums) ---------------------------------------------------

template <typename T>
TDM_HD inline void clusterWeightItem(Image<T> const& im, int32_t m)
{
    // combine: (assignment * w_in).sum(-1), every token taking part (0 * NaN is NaN, as in the reference), summed
    // in dotLanes()' order: partial l takes tokens l, l + 32, ..., then the tree (the device: a warp per cluster)
    float partial[kLanes] = {};
    for (int32_t i = 0; i < countInattentive(im.s); ++i)
        partial[i % kLanes] += joins(im.ws.labels[i], m) * weightIn(im, i);
    im.ws.weight[m] = sumLanes(partial);
}

// ---- phase 8: the combination coefficients: the reference's normalised weight matrices ---------------------------
// merge_matched: weights / norm [Kb, r] and wb / norm [Kb]; combine: (assignment * w_in) / row sums [M, L]. Computed
// once here (the same divisions the reference makes), so that the combine does no division per channel.

template <typename T>
TDM_HD inline void coefficientItem(Image<T> const& im, int32_t item)
{
    int32_t const kb = countB(im.s), l = countInattentive(im.s), r = im.s.pairs;
    if (item < kb * r)
    {
        int32_t const j = item / r, q = item % r;
        im.ws.mergeCoef[item] = (joins(im.ws.dst[q], j) * weightA(im, im.ws.src[q])) / im.ws.total[j];
        return;
    }
    item -= kb * r;
    if (item < kb)
    {
        im.ws.selfCoef[item] = weightB(im, item) / im.ws.total[item];
        return;
    }
    item -= kb;
    int32_t const m = item / l, i = item % l;
    im.ws.clusterCoef[item] = (joins(im.ws.labels[i], m) * weightIn(im, i)) / im.ws.weight[m];
}

// ---- phase 9: the output tokens: CLS, merged B tokens, unmatched A tokens, clusters ------------------------------

template <typename T>
TDM_HD inline void combineItem(Image<T> const& im, int32_t item)
{
    int32_t const c = im.s.c, kb = countB(im.s), ka = countA(im.s), r = im.s.pairs;
    int32_t const row = item / c, ch = item % c;
    float v;
    if (row == 0)
        v = toFloat(im.x[ch]);
    else if (row <= kb)
    {
        // merge_matched: (wb / total) * b + (weights / total) @ x_src, over every q as the reference's MatMul
        // (0 * Inf is NaN there too)
        int32_t const j = row - 1;
        float const* coef = im.ws.mergeCoef + size_t(j) * r;
        float acc = 0.f;
        for (int32_t q = 0; q < r; ++q)
            acc += coef[q] * toFloat(rowA(im, im.ws.src[q])[ch]);
        v = im.ws.selfCoef[j] * toFloat(rowB(im, j)[ch]) + acc;
    }
    else if (row <= kb + ka - r)
        v = toFloat(rowA(im, im.ws.unm[row - 1 - kb])[ch]); // gather_tokens(x_a, matching.unm)
    else
    {
        // combine(x_in, cluster_assignment, w_in): w @ x_in over every token (0 * Inf is NaN, as in the MatMul)
        int32_t const m = row - 1 - kb - (ka - r), l = countInattentive(im.s);
        float const* coef = im.ws.clusterCoef + size_t(m) * l;
        float acc = 0.f;
        for (int32_t i = 0; i < l; ++i)
            acc += coef[i] * toFloat(rowIn(im, i)[ch]);
        v = acc;
    }
    fromFloat(v, im.out + item);
}

//! Items of every phase, in order (the CUDA kernel and the host loop both walk this list).
template <typename T>
TDM_HD inline int32_t phaseItems(Image<T> const& im, int32_t phase)
{
    int32_t const ka = countA(im.s), kb = countB(im.s), l = countInattentive(im.s);
    switch (phase)
    {
    case 0: return patchCount(im.s);
    case 1: return similarityItems(im);
    case 2: return ka + l;
    case 3: return ka + l;
    case 4: return ka + l;
    case 5: return l + kb;
    case 6: return im.s.clusters;
    case 7: return kb * im.s.pairs + kb + im.s.clusters * l;
    default: return outputTokens(im.s) * im.s.c;
    }
}

constexpr int32_t kPhases = 9;

template <typename T>
TDM_HD inline void runItem(Image<T> const& im, int32_t phase, int32_t item)
{
    switch (phase)
    {
    case 0: decoupleItem(im, item); break;
    case 1: similarityItemHost(im, item); break; // the device runs phase 2 as tiles (batMergeKernel.cu)
    case 2: partnerDensityItem(im, item); break;
    case 3: edgeDeltaItem(im, item); break;
    case 4: matchingCentreItem(im, item); break;
    case 5: labelTotalItem(im, item); break;
    case 6: clusterWeightItem(im, item); break;
    case 7: coefficientItem(im, item); break;
    default: combineItem(im, item); break;
    }
}

//! The whole stage on the CPU: x [batch, n, c], importance [batch, n-1] -> out [batch, outputTokens, c].
//! workspace: batch * workspaceBytes(s) bytes, 4-byte aligned; it keeps every image's selections afterwards.
template <typename T>
inline void batMergeHost(BatSizes const& s, int32_t batch, T const* x, T const* importance, T* out, void* workspace)
{
    for (int32_t b = 0; b < batch; ++b)
    {
        Image<T> const im{s, x + size_t(b) * s.n * s.c, importance + size_t(b) * (s.n - 1),
            out + size_t(b) * outputTokens(s) * s.c,
            workspaceAt(s, static_cast<char*>(workspace) + size_t(b) * workspaceBytes(s))};
        for (int32_t phase = 0; phase < kPhases; ++phase)
            for (int32_t item = 0, count = phaseItems(im, phase); item < count; ++item)
                runItem(im, phase, item);
    }
}

} // namespace tdm
