/*
 * Launcher of the fused BAT merge stage (batMergeKernel.cu): the phases of batMerge.h as five kernels enqueued on one
 * stream. Shared by the TensorRT plugin wrappers and the PyTorch extension.
 */
#pragma once

#include "batMerge.h"

#include <cuda_runtime_api.h>

namespace tdm
{

//! Token types of the launcher (the TensorRT formats kFLOAT and kHALF, torch.float32 and torch.float16).
enum class TokenType : int32_t
{
    kFLOAT = 0,
    kHALF = 1,
};

//! Scratch the launcher needs for `batch` images (4-byte aligned; pass at least this many bytes).
size_t batMergeWorkspaceSize(BatSizes const& sizes, int32_t batch);

//! x [batch, n, c], importance [batch, n-1] (both of `type`) -> out [batch, outputTokens(sizes), c].
//! Returns cudaSuccess, cudaErrorInvalidValue for invalid sizes, an error left pending by earlier work (then nothing
//! is launched), or the first launch error; nothing is synchronised. The workspace's content does not matter.
cudaError_t batMergeForward(BatSizes const& sizes, int32_t batch, TokenType type, void const* x,
    void const* importance, void* out, void* workspace, cudaStream_t stream);

} // namespace tdm
