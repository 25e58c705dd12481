/*
 * The fused BAT merge stage as one CUDA kernel: one thread block per image walks the phases of batMerge.h, every
 * thread taking every blockDim.x-th item of a phase (every warp a dot product in phase 2), with a barrier between
 * phases. Selection arithmetic is fp32;
 * tokens are float or __half. Uses only the CUDA runtime of CUDA 11.4 (JetPack 5) and C++17.
 */
#include "batMergeKernel.h"

namespace tdm
{
namespace
{

constexpr int32_t kThreads = 512;
constexpr int32_t kSimilarityPhase = 1;

//! Phase 2's dot products, one warp each: lane partial sums, then the butterfly that similarityLanes() emulates.
template <typename T>
__device__ void similarityWarps(Image<T> const& im)
{
    int32_t const lane = threadIdx.x % kLanes, warp = threadIdx.x / kLanes, warps = blockDim.x / kLanes;
    int32_t const count = phaseItems(im, kSimilarityPhase);
    for (int32_t item = warp; item < count; item += warps)
    {
        DotItem<T> const d = similarityItem(im, item);
        float p = dotPartial(d.u, d.v, im.s.c, lane);
        for (int32_t offset = kLanes / 2; offset > 0; offset /= 2)
            p = p + __shfl_xor_sync(0xffffffffu, p, offset);
        if (lane == 0)
            *d.dst = finishDot(p, d.kind);
    }
}

template <typename T>
__global__ void __launch_bounds__(kThreads, 1) batMergeKernel(
    BatSizes s, T const* x, T const* importance, T* out, char* workspace)
{
    size_t const b = blockIdx.x;
    Image<T> const im{s, x + b * s.n * s.c, importance + b * (s.n - 1), out + b * outputTokens(s) * s.c,
        workspaceAt(s, workspace + b * workspaceBytes(s))};
    for (int32_t phase = 0; phase < kPhases; ++phase)
    {
        if (phase == kSimilarityPhase)
            similarityWarps(im);
        else
        {
            int32_t const count = phaseItems(im, phase);
            for (int32_t item = threadIdx.x; item < count; item += blockDim.x)
                runItem(im, phase, item);
        }
        __syncthreads();
    }
}

template <typename T>
cudaError_t launch(BatSizes const& s, int32_t batch, void const* x, void const* importance, void* out,
    void* workspace, cudaStream_t stream)
{
    if (batch == 0)
        return cudaSuccess;
    batMergeKernel<T><<<batch, kThreads, 0, stream>>>(s, static_cast<T const*>(x),
        static_cast<T const*>(importance), static_cast<T*>(out), static_cast<char*>(workspace));
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
    if (type == TokenType::kHALF)
        return launch<__half>(sizes, batch, x, importance, out, workspace, stream);
    return launch<float>(sizes, batch, x, importance, out, workspace, stream);
}

} // namespace tdm
