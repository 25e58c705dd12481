/*
 * PyTorch binding of the fused BAT merge kernel (tdm_edge/reduce/fused.py builds it with
 * torch.utils.cpp_extension.load when a GPU is present): tokens [B, n, c] and importance [B, n-1] on the GPU, fp32
 * or fp16, -> [B, outputTokens, c] on the current stream.
 */
#include "batMergeKernel.h"

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

namespace
{

torch::Tensor batMerge(torch::Tensor const& x, torch::Tensor const& importance, int64_t n, int64_t c, int64_t keep,
    int64_t pairs, int64_t clusters, int64_t knn)
{
    TORCH_CHECK(x.is_cuda() && importance.is_cuda(), "bat_merge (CUDA): tokens and importance must be on the GPU");
    TORCH_CHECK(x.device() == importance.device(), "bat_merge: tokens and importance are on different GPUs");
    TORCH_CHECK(x.scalar_type() == importance.scalar_type(), "bat_merge: tokens and importance differ in dtype");
    TORCH_CHECK(x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kHalf,
        "bat_merge (CUDA): float32 or float16 tokens only");
    TORCH_CHECK(x.dim() == 3 && x.size(1) == n && x.size(2) == c, "bat_merge: tokens must be [B, n, c]");
    TORCH_CHECK(importance.dim() == 2 && importance.size(0) == x.size(0) && importance.size(1) == n - 1,
        "bat_merge: importance must be [B, n-1]");
    for (int64_t const v : {keep, pairs, clusters, knn})
        TORCH_CHECK(v >= 0 && v <= tdm::kMaxTokens, "bat_merge: keep, pairs, clusters and knn must be in [0, ",
            tdm::kMaxTokens, "]");
    // the tensors' GPU is current while we allocate and launch (the stream below is that GPU's current stream)
    c10::cuda::CUDAGuard const guard(x.device());
    tdm::BatSizes const sizes{static_cast<int32_t>(n), static_cast<int32_t>(c), static_cast<int32_t>(keep),
        static_cast<int32_t>(pairs), static_cast<int32_t>(clusters), static_cast<int32_t>(knn)};
    int32_t const code = tdm::validateSizes(sizes);
    TORCH_CHECK(code == 0, "bat_merge: ", tdm::batMergeSizeError(code));
    auto const tokens = x.contiguous();
    auto const weights = importance.contiguous();
    int32_t const batch = static_cast<int32_t>(x.size(0));
    auto out = torch::empty({x.size(0), tdm::outputTokens(sizes), c}, x.options());
    auto workspace = torch::empty({static_cast<int64_t>(tdm::batMergeWorkspaceSize(sizes, batch))},
        x.options().dtype(torch::kUInt8));
    cudaError_t const status = tdm::batMergeForward(sizes, batch,
        x.scalar_type() == torch::kHalf ? tdm::TokenType::kHALF : tdm::TokenType::kFLOAT, tokens.data_ptr(),
        weights.data_ptr(), out.data_ptr(), workspace.data_ptr(), c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(status == cudaSuccess, "bat_merge: kernel launch failed: ", cudaGetErrorString(status));
    return out;
}

} // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m)
{
    m.def("bat_merge", &batMerge, "one fused BAT merge stage (CUDA)");
}
