/*
 * The fused BAT merge stage as a short chain of CUDA kernels on one stream, so that a single image spreads over the
 * GPU wherever the work allows it (the performance model and its estimates are in docs/kernel.md):
 *
 *   1. decoupleKernel    phase 1 over a grid, a warp per patch token: its rank in the stable descending order
 *   2. similarityKernel  phase 2 over a grid: 8 x 8 tiles of a @ b^T and of the inattentive Gram product, chunks of
 *                        32 channels staged in shared memory, and the norms, a warp each; every dot product summed
 *                        in the fixed order of dotLanes() (batMerge.h), so the host rounds it identically
 *   3. rowsKernel        phase 3 over a grid, a warp per row: best partner of every A token (argmax by lanes), and
 *                        squared distances and kNN density of every inattentive token (k warp-wide minimum passes)
 *   4. selectionKernel   phases 4-8 in one 512-thread block per image, __syncthreads between phases: edge ranks,
 *                        deltas, slots, centre ranks and cluster weights a warp per item; labels and coefficients a
 *                        thread each
 *   5. gridPhaseKernel   phase 9 (combine) over a grid of output values x images
 *
 * The kernel boundaries are the barriers between phases 1, 2, 3, 4-8 and 9. Selection arithmetic is fp32; tokens
 * are float or __half. Built with --fmad=false (CMakeLists.txt, fused.py): no a * b + c is contracted, so every value
 * rounds as in the CPU build. Uses only the CUDA runtime of CUDA 11.4 (JetPack 5) and C++17; 1-D grids, static
 * shared memory, __shfl_xor_sync with a full mask in warp-uniform control flow.
 */
#include "batMergeKernel.h"

namespace tdm
{
namespace
{

constexpr int32_t kThreads = 256;      // decouple, rows, combine blocks
constexpr int32_t kSelectionThreads = 512; // the one selection block per image
constexpr int32_t kTile = 8; // similarity tiles: kTile x kTile dot products per block, one per thread (docs/kernel.md)
constexpr int32_t kTileThreads = kTile * kTile;
constexpr int32_t kNormsPerBlock = kTileThreads / kLanes;
constexpr int32_t kWarpsPerBlock = kThreads / kLanes;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int32_t kLabelPhase = 5;       // phase 6 (labels, totals) in batMerge.h's 0-based numbering
constexpr int32_t kCoefficientPhase = 7; // phase 8
constexpr int32_t kCombinePhase = kPhases - 1;

template <typename T>
__device__ Image<T> imageAt(BatSizes const& s, int32_t b, T const* x, T const* importance, T* out, char* workspace)
{
    return Image<T>{s, x + size_t(b) * s.n * s.c, importance + size_t(b) * (s.n - 1),
        out + size_t(b) * outputTokens(s) * s.c, workspaceAt(s, workspace + size_t(b) * workspaceBytes(s))};
}

//! Phase 9 (combine): every image gets `blocks` blocks, every thread every (blocks * blockDim.x)-th item.
template <typename T>
__global__ void __launch_bounds__(kThreads) gridPhaseKernel(
    BatSizes s, T const* x, T const* importance, T* out, char* workspace, int32_t phase, int32_t blocks)
{
    Image<T> const im = imageAt(s, int32_t(blockIdx.x) / blocks, x, importance, out, workspace);
    int32_t const count = phaseItems(im, phase);
    for (int32_t item = (int32_t(blockIdx.x) % blocks) * blockDim.x + threadIdx.x; item < count;
         item += blocks * blockDim.x)
        runItem(im, phase, item);
}

//! Blocks of phase 2 per image: tiles of a @ b^T [Ka, Kb], tiles of the Gram product [L, L], blocks of norms.
struct SimilarityGrid
{
    int32_t tilesA, tilesB, tilesL, norms;
    TDM_HD int32_t matchTiles() const { return tilesA * tilesB; }
    TDM_HD int32_t blocks() const { return matchTiles() + tilesL * tilesL + norms; }
};

TDM_HD inline SimilarityGrid similarityGrid(BatSizes const& s)
{
    auto const ceilDiv = [](int32_t a, int32_t b) { return (a + b - 1) / b; };
    return {ceilDiv(countA(s), kTile), ceilDiv(countB(s), kTile), ceilDiv(countInattentive(s), kTile),
        ceilDiv(countA(s) + countB(s), kNormsPerBlock)};
}

//! Lane `lane`'s partial sum of u . v: channels lane, lane + kLanes, ... with fmaf (partial[lane] of dotLanes()).
template <typename T>
__device__ float lanePartial(T const* u, T const* v, int32_t c, int32_t lane)
{
    float acc = 0.f;
    for (int32_t ch = lane; ch < c; ch += kLanes)
        acc = fmaf(toFloat(u[ch]), toFloat(v[ch]), acc);
    return acc;
}

//! One norm by one warp: lane partials, then the butterfly, whose lane-0 value is sumLanes()'s tree.
template <typename T>
__device__ void normWarp(Image<T> const& im, int32_t item, int32_t lane)
{
    DotItem<T> const d = similarityItem(im, item);
    float p = lanePartial(d.u, d.v, im.s.c, lane);
    for (int32_t offset = kLanes / 2; offset > 0; offset /= 2)
        p = p + __shfl_xor_sync(kFullMask, p, offset);
    if (lane == 0)
        *d.dst = finishDot(p, d.kind);
}

//! Phase 2. A tile block stages kTile rows of each side, one chunk of kLanes channels at a time, in shared memory;
//! thread (ty, tx) keeps the kLanes partial sums of dot (row ty, col tx) and adds them up at the end (dotLanes()'s
//! order, bit for bit). Norm blocks compute |a_t| and |b_j| one per warp.
template <typename T>
__global__ void __launch_bounds__(kTileThreads) similarityKernel(
    BatSizes s, T const* x, T const* importance, char* workspace, int32_t blocks)
{
    // rows 16-byte aligned (whole chunks load as float4) and 4 banks apart (a warp's 8 columns read in one wavefront)
    __shared__ __align__(16) float tileU[kTile][kLanes + 4];
    __shared__ __align__(16) float tileV[kTile][kLanes + 4];
    Image<T> const im = imageAt(s, int32_t(blockIdx.x) / blocks, x, importance, static_cast<T*>(nullptr), workspace);
    SimilarityGrid const g = similarityGrid(s);
    int32_t const ka = countA(s), kb = countB(s), l = countInattentive(s);
    int32_t block = int32_t(blockIdx.x) % blocks;
    if (block >= g.blocks() - g.norms) // norm items ka * kb + t, t in [0, ka + kb): one warp each
    {
        int32_t const lane = threadIdx.x % kLanes;
        int32_t const t = (block - (g.blocks() - g.norms)) * kNormsPerBlock + int32_t(threadIdx.x) / kLanes;
        if (t < ka + kb)
            normWarp(im, ka * kb + t, lane);
        return; // the whole block leaves here: no barrier below is skipped by only some threads
    }
    bool const gram = block >= g.matchTiles();
    block -= gram ? g.matchTiles() : 0;
    int32_t const across = gram ? g.tilesL : g.tilesB;
    int32_t const row0 = (block / across) * kTile, col0 = (block % across) * kTile;
    int32_t const rows = gram ? l : ka, cols = gram ? l : kb;

    // loading: thread -> (tile row lr, channels lc and lc + kTile of the chunk)
    int32_t const lr = threadIdx.x / kTile, lc = threadIdx.x % kTile;
    T const* const u = row0 + lr < rows ? (gram ? rowIn(im, row0 + lr) : rowA(im, row0 + lr)) : nullptr;
    T const* const v = col0 + lr < cols ? (gram ? rowIn(im, col0 + lr) : rowB(im, col0 + lr)) : nullptr;
    // computing: thread -> dot (row0 + ty, col0 + tx)
    int32_t const ty = threadIdx.x / kTile, tx = threadIdx.x % kTile;
    bool const mine = row0 + ty < rows && col0 + tx < cols;

    float partial[kLanes] = {};
    for (int32_t base = 0; base < s.c; base += kLanes)
    {
        int32_t const count = s.c - base < kLanes ? s.c - base : kLanes;
        for (int32_t h = 0; h < kLanes; h += kTile)
        {
            int32_t const ch = lc + h;
            tileU[lr][ch] = u != nullptr && ch < count ? toFloat(u[base + ch]) : 0.f;
            tileV[lr][ch] = v != nullptr && ch < count ? toFloat(v[base + ch]) : 0.f;
        }
        __syncthreads();
        if (mine)
            accumulateChunk(partial, &tileU[ty][0], &tileV[tx][0], count);
        __syncthreads();
    }
    if (!mine)
        return;
    int32_t const i = row0 + ty, j = col0 + tx;
    if (gram)
        im.ws.gram[i * l + j] = finishDot(sumLanes(partial), DotKind::kGram);
    else
        im.ws.dots[i * kb + j] = finishDot(sumLanes(partial), DotKind::kMatch);
}

//! The warp's first (value, index) in the strict total order `before` (lanes without a candidate hold index -1):
//! a butterfly, after which every lane holds the same pair.
template <bool (*before)(float, int32_t, float, int32_t)>
__device__ void warpFirst(float& value, int32_t& index)
{
    for (int32_t offset = kLanes / 2; offset > 0; offset /= 2)
    {
        float const otherValue = __shfl_xor_sync(kFullMask, value, offset);
        int32_t const otherIndex = __shfl_xor_sync(kFullMask, index, offset);
        if (otherIndex >= 0 && (index < 0 || before(otherValue, otherIndex, value, index)))
        {
            value = otherValue;
            index = otherIndex;
        }
    }
}

//! partnerDensityItem() for A token t by one warp: lane l scores B tokens l, l + 32, ...
template <typename T>
__device__ void partnerWarp(Image<T> const& im, int32_t t, int32_t lane)
{
    int32_t const kb = countB(im.s);
    int32_t partner = -1;
    float best = 0.f;
    for (int32_t j = lane; j < kb; j += kLanes)
    {
        float const score = im.ws.dots[t * kb + j] / (im.ws.normA[t] * im.ws.normB[j]);
        if (partner < 0 || beforeDesc(score, j, best, partner))
        {
            best = score;
            partner = j;
        }
    }
    warpFirst<beforeDesc>(best, partner);
    if (lane == 0)
    {
        im.ws.partner[t] = partner;
        im.ws.best[t] = best;
    }
}

//! partnerDensityItem() for inattentive token i by one warp: lane l owns entries l, l + 32, ... of the d2 row (and
//! reads back only those); each kNN pass is a warp-wide first-after-the-last-taken in topk's ascending order.
template <typename T>
__device__ void densityWarp(Image<T> const& im, int32_t i, int32_t lane)
{
    int32_t const l = countInattentive(im.s);
    float const* gram = im.ws.gram;
    float* d2 = im.ws.d2 + size_t(i) * l;
    float const sq_i = gram[i * l + i] * -0.5f;
    for (int32_t j = lane; j < l; j += kLanes)
        d2[j] = clampMin0((sq_i + gram[j * l + j] * -0.5f) + gram[i * l + j]);
    int32_t const k = knnCount(im.s);
    float sum = 0.f;
    int32_t taken = -1;
    float takenValue = 0.f;
    for (int32_t pass = 0; pass < k; ++pass)
    {
        int32_t pick = -1;
        float pickValue = 0.f;
        for (int32_t j = lane; j < l; j += kLanes)
        {
            bool const after = taken < 0 || beforeAsc(takenValue, taken, d2[j], j);
            if (after && (pick < 0 || beforeAsc(d2[j], j, pickValue, pick)))
            {
                pick = j;
                pickValue = d2[j];
            }
        }
        warpFirst<beforeAsc>(pickValue, pick);
        sum += pickValue;
        taken = pick;
        takenValue = pickValue;
    }
    if (lane == 0)
        im.ws.density[i] = expPortable((sum / float(k)) * (-1.0f / float(im.s.c)));
}

//! decoupleItem() for patch token i by one warp: lane l counts the tokens l, l + 32, ... before i; the counts are
//! added exactly (integers) by a butterfly.
template <typename T>
__device__ void decoupleWarp(Image<T> const& im, int32_t i, int32_t lane)
{
    int32_t const count = patchCount(im.s);
    float const v = toFloat(im.importance[i]);
    int32_t rank = 0;
    for (int32_t j = lane; j < count; j += kLanes)
        rank += beforeDesc(toFloat(im.importance[j]), j, v, i) ? 1 : 0;
    for (int32_t offset = kLanes / 2; offset > 0; offset /= 2)
        rank += __shfl_xor_sync(kFullMask, rank, offset);
    if (lane == 0)
        im.ws.order[rank] = i;
}

//! Phase 1: a warp per patch token, kWarpsPerBlock tokens per block.
template <typename T>
__global__ void __launch_bounds__(kThreads) decoupleKernel(
    BatSizes s, T const* x, T const* importance, char* workspace, int32_t blocks)
{
    Image<T> const im = imageAt(s, int32_t(blockIdx.x) / blocks, x, importance, static_cast<T*>(nullptr), workspace);
    int32_t const i = (int32_t(blockIdx.x) % blocks) * kWarpsPerBlock + int32_t(threadIdx.x) / kLanes;
    if (i < patchCount(s)) // warp-uniform
        decoupleWarp(im, i, int32_t(threadIdx.x) % kLanes);
}

//! Phase 3: a warp per A token (partner) and per inattentive token (density), kWarpsPerBlock rows per block.
template <typename T>
__global__ void __launch_bounds__(kThreads) rowsKernel(
    BatSizes s, T const* x, T const* importance, char* workspace, int32_t blocks)
{
    Image<T> const im = imageAt(s, int32_t(blockIdx.x) / blocks, x, importance, static_cast<T*>(nullptr), workspace);
    int32_t const lane = threadIdx.x % kLanes;
    int32_t const row = (int32_t(blockIdx.x) % blocks) * kWarpsPerBlock + int32_t(threadIdx.x) / kLanes;
    int32_t const ka = countA(s);
    if (row < ka) // warp-uniform: every lane of a warp has the same row
        partnerWarp(im, row, lane);
    else if (row < ka + countInattentive(s))
        densityWarp(im, row - ka, lane);
}

//! A warp's integer sum (exact in any order).
__device__ int32_t warpSum(int32_t v)
{
    for (int32_t offset = kLanes / 2; offset > 0; offset /= 2)
        v += __shfl_xor_sync(kFullMask, v, offset);
    return v;
}

//! edgeDeltaItem() by one warp: the rank of edge t, or token i's row maximum and its minimum over denser tokens,
//! each lane taking entries lane, lane + 32, ... The minimum and the NaN-propagating maximum do not depend on the
//! order they are taken in (up to the sign of a zero, which no rank tells apart).
template <typename T>
__device__ void edgeDeltaWarp(Image<T> const& im, int32_t item, int32_t lane)
{
    int32_t const ka = countA(im.s), l = countInattentive(im.s);
    if (item < ka)
    {
        int32_t before = 0;
        for (int32_t j = lane; j < ka; j += kLanes)
            before += beforeDesc(im.ws.best[j], j, im.ws.best[item], item) ? 1 : 0;
        if (int32_t const rank = warpSum(before); lane == 0)
            im.ws.matched[item] = rank < im.s.pairs ? 1 : 0;
        return;
    }
    int32_t const i = item - ka;
    float const* d2 = im.ws.d2 + size_t(i) * l;
    float const rho = im.ws.density[i];
    float rowMax = d2[0];
    for (int32_t j = lane; j < l; j += kLanes)
        rowMax = maxNan(d2[j], rowMax);
    for (int32_t offset = kLanes / 2; offset > 0; offset /= 2)
        rowMax = maxNan(__shfl_xor_sync(kFullMask, rowMax, offset), rowMax);
    float delta = rowMax;
    for (int32_t j = lane; j < l; j += kLanes)
    {
        float const rj = im.ws.density[j];
        bool const denser = j < i ? rj >= rho : rj > rho;
        if (denser && d2[j] < delta)
            delta = d2[j];
    }
    for (int32_t offset = kLanes / 2; offset > 0; offset /= 2)
    {
        float const other = __shfl_xor_sync(kFullMask, delta, offset);
        delta = other < delta ? other : delta; // NaN (from rowMax) stays on every lane
    }
    if (lane == 0)
        im.ws.score[i] = rho * sqrtf(delta);
}

//! matchingCentreItem() by one warp: the A token's slot in its group, or the inattentive token's score rank.
template <typename T>
__device__ void matchingCentreWarp(Image<T> const& im, int32_t item, int32_t lane)
{
    int32_t const ka = countA(im.s), l = countInattentive(im.s);
    if (item < ka)
    {
        int32_t const mine = im.ws.matched[item];
        int32_t same = 0;
        for (int32_t t = lane; t < item; t += kLanes)
            same += im.ws.matched[t] == mine ? 1 : 0;
        int32_t const slot = warpSum(same);
        if (lane != 0)
            return;
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
    int32_t before = 0;
    for (int32_t j = lane; j < l; j += kLanes)
        before += beforeDesc(im.ws.score[j], j, im.ws.score[i], i) ? 1 : 0;
    if (int32_t const rank = warpSum(before); lane == 0 && rank < im.s.clusters)
        im.ws.centres[rank] = i;
}

//! clusterWeightItem() for cluster m by one warp: lane partials, then the butterfly (sumLanes()'s tree).
template <typename T>
__device__ void clusterWeightWarp(Image<T> const& im, int32_t m, int32_t lane)
{
    float p = 0.f;
    for (int32_t i = lane; i < countInattentive(im.s); i += kLanes)
        p += joins(im.ws.labels[i], m) * weightIn(im, i);
    for (int32_t offset = kLanes / 2; offset > 0; offset /= 2)
        p = p + __shfl_xor_sync(kFullMask, p, offset);
    if (lane == 0)
        im.ws.weight[m] = p;
}

//! Phases 4-8 (edge ranks and deltas .. combination coefficients): one block per image, a barrier between phases.
//! Phases 4, 5 and 7 (O(Ka) or O(L) per item) take a warp per item; 6 and 8 a thread per item, as the host.
template <typename T>
__global__ void __launch_bounds__(kSelectionThreads) selectionKernel(
    BatSizes s, T const* x, T const* importance, char* workspace)
{
    Image<T> const im = imageAt(s, int32_t(blockIdx.x), x, importance, static_cast<T*>(nullptr), workspace);
    int32_t const lane = threadIdx.x % kLanes, warp = threadIdx.x / kLanes, warps = blockDim.x / kLanes;
    int32_t const rows = countA(s) + countInattentive(s); // items of phases 4 and 5
    for (int32_t item = warp; item < rows; item += warps)
        edgeDeltaWarp(im, item, lane);
    __syncthreads();
    for (int32_t item = warp; item < rows; item += warps)
        matchingCentreWarp(im, item, lane);
    __syncthreads();
    for (int32_t item = threadIdx.x; item < phaseItems(im, kLabelPhase); item += blockDim.x)
        runItem(im, kLabelPhase, item);
    __syncthreads();
    for (int32_t m = warp; m < s.clusters; m += warps)
        clusterWeightWarp(im, m, lane);
    __syncthreads();
    for (int32_t item = threadIdx.x; item < phaseItems(im, kCoefficientPhase); item += blockDim.x)
        runItem(im, kCoefficientPhase, item);
}

//! Blocks per image for a grid phase, or 0 when batch x blocks would not fit a 1-D grid.
int32_t gridBlocks(int64_t items, int32_t threads, int32_t batch)
{
    int64_t const blocks = (items + threads - 1) / threads;
    int64_t const limit = 2147483647;
    return blocks < 1 || blocks * batch > limit ? 0 : static_cast<int32_t>(blocks);
}

template <typename T>
cudaError_t launch(BatSizes const& s, int32_t batch, void const* xv, void const* importancev, void* outv,
    void* workspacev, cudaStream_t stream)
{
    auto const* x = static_cast<T const*>(xv);
    auto const* importance = static_cast<T const*>(importancev);
    auto* out = static_cast<T*>(outv);
    auto* workspace = static_cast<char*>(workspacev);
    int32_t const decoupleBlocks = gridBlocks(patchCount(s), kWarpsPerBlock, batch);
    int32_t const combineBlocks = gridBlocks(int64_t(outputTokens(s)) * s.c, kThreads, batch);
    int32_t const rowBlocks = gridBlocks(countA(s) + countInattentive(s), kWarpsPerBlock, batch);
    int32_t const similarityBlocks = similarityGrid(s).blocks();
    if (decoupleBlocks == 0 || combineBlocks == 0 || rowBlocks == 0 || int64_t(similarityBlocks) * batch > 2147483647)
        return cudaErrorInvalidValue;

    decoupleKernel<T><<<batch * decoupleBlocks, kThreads, 0, stream>>>(s, x, importance, workspace, decoupleBlocks);
    if (cudaError_t const e = cudaGetLastError())
        return e;
    similarityKernel<T><<<batch * similarityBlocks, kTileThreads, 0, stream>>>(
        s, x, importance, workspace, similarityBlocks);
    if (cudaError_t const e = cudaGetLastError())
        return e;
    rowsKernel<T><<<batch * rowBlocks, kThreads, 0, stream>>>(s, x, importance, workspace, rowBlocks);
    if (cudaError_t const e = cudaGetLastError())
        return e;
    selectionKernel<T><<<batch, kSelectionThreads, 0, stream>>>(s, x, importance, workspace);
    if (cudaError_t const e = cudaGetLastError())
        return e;
    gridPhaseKernel<T><<<batch * combineBlocks, kThreads, 0, stream>>>(
        s, x, importance, out, workspace, kCombinePhase, combineBlocks);
    return cudaGetLastError();
}

} // namespace

size_t batMergeWorkspaceSize(BatSizes const& sizes, int32_t batch)
{
    return workspaceBytes(sizes) * static_cast<size_t>(batch);
}

cudaError_t batMergeForward(BatSizes const& sizes, int32_t batch, TokenType type, void const* x,
    void const* importance, void* out, void* workspace, cudaStream_t stream)
{
    if (validateSizes(sizes) != 0 || batch < 0)
        return cudaErrorInvalidValue;
    if (batch == 0)
        return cudaSuccess;
    // An error left unread by earlier work on this thread would afterwards be indistinguishable from a failed launch
    // of ours: read it (which clears it unless it is sticky), report it and launch nothing. After this, the error
    // read after each launch is that launch's own.
    if (cudaError_t const pending = cudaGetLastError())
        return pending;
    if (type == TokenType::kHALF)
        return launch<__half>(sizes, batch, x, importance, out, workspace, stream);
    return launch<float>(sizes, batch, x, importance, out, workspace, stream);
}

} // namespace tdm
