/*
 * What both TensorRT wrappers of the fused BAT merge share: names, attributes, shapes and formats. The wrappers only
 * negotiate and serialise; the math lives in batMerge.h / batMergeKernel.cu.
 *
 * Inputs: 0 tokens [B, n, c], 1 importance [B, n-1] (class attention), same type (kFLOAT or kHALF), linear.
 * Output: 0 tokens [B, 1 + keep - pairs + clusters, c], the type of input 0.
 * Attributes (INT, all required): n, c, keep, pairs, clusters, knn.
 */
#pragma once

#include "NvInfer.h"
#include "batMergeKernel.h"

#include <array>
#include <cstring>
#include <vector>

namespace tdm
{
namespace plugin
{

constexpr char const* kPluginName{"TdmBatMerge"};
constexpr char const* kLegacyVersion{"1"}; //!< IPluginV2DynamicExt: TensorRT 8.5 .. 11
constexpr char const* kV3Version{"2"};     //!< IPluginV3: TensorRT 10.0+
constexpr int32_t kNbFields{6};
constexpr std::array<char const*, kNbFields> kFieldNames{"n", "c", "keep", "pairs", "clusters", "knn"};

inline std::array<int32_t, kNbFields> toArray(BatSizes const& s)
{
    return {s.n, s.c, s.keep, s.pairs, s.clusters, s.knn};
}

inline BatSizes fromArray(std::array<int32_t, kNbFields> const& v)
{
    return BatSizes{v[0], v[1], v[2], v[3], v[4], v[5]};
}

//! Sizes from plugin fields (the ONNX node's INT attributes arrive as kINT32). False unless all six are present
//! as single kINT32 values and form a valid stage.
inline bool sizesFromFields(nvinfer1::PluginFieldCollection const* fc, BatSizes& sizes)
{
    if (fc == nullptr)
        return false;
    std::array<int32_t, kNbFields> values{};
    std::array<bool, kNbFields> seen{};
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        nvinfer1::PluginField const& f = fc->fields[i];
        for (int32_t k = 0; k < kNbFields; ++k)
        {
            if (f.name != nullptr && std::strcmp(f.name, kFieldNames[k]) == 0)
            {
                if (f.type != nvinfer1::PluginFieldType::kINT32 || f.length != 1 || f.data == nullptr)
                    return false;
                values[k] = *static_cast<int32_t const*>(f.data);
                seen[k] = true;
            }
        }
    }
    for (bool s : seen)
        if (!s)
            return false;
    sizes = fromArray(values);
    return validateSizes(sizes) == 0;
}

//! Output dims from input 0's: [B, outputTokens, c].
inline nvinfer1::DimsExprs outputDims(BatSizes const& s, nvinfer1::DimsExprs const& tokens,
    nvinfer1::IExprBuilder& exprBuilder)
{
    nvinfer1::DimsExprs out{};
    out.nbDims = 3;
    out.d[0] = tokens.d[0];
    out.d[1] = exprBuilder.constant(outputTokens(s));
    out.d[2] = exprBuilder.constant(s.c);
    return out;
}

//! fp32 or fp16, linear; input 1 and output 0 take input 0's type.
inline bool formatSupported(nvinfer1::PluginTensorDesc const* inOut, int32_t pos)
{
    nvinfer1::PluginTensorDesc const& d = inOut[pos];
    if (d.format != nvinfer1::TensorFormat::kLINEAR)
        return false;
    if (pos == 0)
        return d.type == nvinfer1::DataType::kFLOAT || d.type == nvinfer1::DataType::kHALF;
    return d.type == inOut[0].type;
}

//! Input dims agree with the sizes (-1, a dynamic extent, passes).
inline bool dimsMatch(BatSizes const& s, nvinfer1::Dims const& tokens, nvinfer1::Dims const& importance)
{
    auto const same = [](int64_t have, int64_t want) { return have == -1 || have == want; };
    return tokens.nbDims == 3 && importance.nbDims == 2 && same(tokens.d[1], s.n) && same(tokens.d[2], s.c)
        && same(importance.d[1], s.n - 1) && same(importance.d[0], tokens.d[0]);
}

inline TokenType tokenType(nvinfer1::DataType t)
{
    return t == nvinfer1::DataType::kHALF ? TokenType::kHALF : TokenType::kFLOAT;
}

} // namespace plugin
} // namespace tdm
