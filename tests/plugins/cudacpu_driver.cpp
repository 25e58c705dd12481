/*
 * C ABI for tests/plugins/test_cuda_on_cpu.py: the real launcher of plugins/tdm_merge/batMergeKernel.cu, compiled
 * for the CPU with plugins/cudacpu (translated copy, force-included cuda_runtime.h), called through ctypes.
 */
#include "batMergeKernel.h"

extern "C"
{

size_t tdm_cudacpu_workspace_size(tdm::BatSizes const* sizes, int32_t batch)
{
    return tdm::batMergeWorkspaceSize(*sizes, batch);
}

//! type 0: fp32, 1: fp16. Returns the cudaError_t of batMergeForward (0 = cudaSuccess).
int32_t tdm_cudacpu_forward(tdm::BatSizes const* sizes, int32_t batch, int32_t type, void const* x,
    void const* importance, void* out, void* workspace)
{
    cudaStream_t stream = nullptr;
    cudaStreamCreate(&stream);
    cudaError_t const err = tdm::batMergeForward(*sizes, batch, type == 1 ? tdm::TokenType::kHALF
        : tdm::TokenType::kFLOAT, x, importance, out, workspace, stream);
    cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
    return static_cast<int32_t>(err);
}

//! 0 forward, 1 reverse, 2 random (seeded) order of a block's threads between synchronisations.
void tdm_cudacpu_schedule(int32_t mode, uint64_t seed)
{
    cudacpu::setSchedule(static_cast<cudacpu::Schedule>(mode), seed);
}

char const* tdm_cudacpu_message()
{
    return cudacpu::lastMessage();
}

} // extern "C"
