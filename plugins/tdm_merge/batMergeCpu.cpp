/*
 * The fused BAT merge stage compiled for the CPU (g++ -std=c++17 -shared -fPIC), with a C ABI for ctypes: the CI
 * test (tests/plugins/test_kernel_cpu.py) runs the same phase functions as the CUDA kernel and compares outputs and
 * selections with the PyTorch reference. Not used for inference.
 */
#include "batMerge.h"

#include <cstring>
#include <vector>

extern "C"
{

//! Bytes of scratch per image.
size_t tdm_bat_workspace_bytes(tdm::BatSizes const* sizes)
{
    return tdm::workspaceBytes(*sizes);
}

//! Tokens out per image, or -1 for invalid sizes.
int32_t tdm_bat_output_tokens(tdm::BatSizes const* sizes)
{
    return tdm::validateSizes(*sizes) == 0 ? tdm::outputTokens(*sizes) : -1;
}

char const* tdm_bat_size_error(tdm::BatSizes const* sizes)
{
    return tdm::batMergeSizeError(tdm::validateSizes(*sizes));
}

//! Ints per image written to `selections`: order [n-1], src [r], dst [r], unm [Ka-r], centres [M], labels [L].
int32_t tdm_bat_selection_ints(tdm::BatSizes const* sizes)
{
    tdm::BatSizes const& s = *sizes;
    return (s.n - 1) + 2 * s.pairs + (tdm::countA(s) - s.pairs) + s.clusters + tdm::countInattentive(s);
}

//! x [batch, n, c], importance [batch, n-1] -> out [batch, n_out, c] in fp32; selections may be null. workspace:
//! batch * tdm_bat_workspace_bytes() bytes, 4-byte aligned, any content (the GPU's is never zeroed: the tests poison
//! it), or null for a zeroed one of our own. Returns 0, or the size error code.
int32_t tdm_bat_merge_f32(tdm::BatSizes const* sizes, int32_t batch, float const* x, float const* importance,
    float* out, int32_t* selections, void* workspace)
{
    tdm::BatSizes const& s = *sizes;
    if (int32_t const code = tdm::validateSizes(s))
        return code;
    size_t const per = tdm::workspaceBytes(s);
    std::vector<int32_t> own;
    if (workspace == nullptr)
    {
        own.resize((per * static_cast<size_t>(batch)) / 4 + 1);
        workspace = own.data();
    }
    tdm::batMergeHost(s, batch, x, importance, out, workspace);
    if (selections == nullptr)
        return 0;
    int32_t const ints = tdm_bat_selection_ints(sizes);
    for (int32_t b = 0; b < batch; ++b)
    {
        tdm::Workspace const w = tdm::workspaceAt(s, static_cast<char*>(workspace) + b * per);
        int32_t* dst = selections + static_cast<size_t>(b) * ints;
        int32_t const l = tdm::countInattentive(s), ka = tdm::countA(s);
        int32_t const* parts[] = {w.order, w.src, w.dst, w.unm, w.centres, w.labels};
        int32_t const lens[] = {s.n - 1, s.pairs, s.pairs, ka - s.pairs, s.clusters, l};
        for (int32_t p = 0; p < 6; ++p)
        {
            std::memcpy(dst, parts[p], sizeof(int32_t) * lens[p]);
            dst += lens[p];
        }
    }
    return 0;
}

} // extern "C"
