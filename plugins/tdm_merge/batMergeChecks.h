/*
 * What both wrappers' enqueue re-checks before launching: the tensors TensorRT hands over have the stage's shapes
 * and one supported type (a wrong engine, a plugin deserialised against another model's sizes, or a TensorRT bug
 * must not become an out-of-bounds kernel).
 */
#pragma once

#include "batMergeCommon.h"
#include "batMergeLog.h"

#include <cstdio>

namespace tdm
{
namespace plugin
{

//! True when inputs [B, n, c], [B, n-1] and output [B, outputTokens, c] are concrete, agree, and share a type of
//! fp32 or fp16; else logs why and returns false.
inline bool enqueueDescsMatch(BatSizes const& s, nvinfer1::PluginTensorDesc const* in,
    nvinfer1::PluginTensorDesc const* out) noexcept
{
    nvinfer1::Dims const& x = in[0].dims;
    nvinfer1::Dims const& w = in[1].dims;
    nvinfer1::Dims const& y = out[0].dims;
    bool const shapes = x.nbDims == 3 && w.nbDims == 2 && y.nbDims == 3 && x.d[0] >= 0 && x.d[0] <= 0x7fffffff
        && x.d[1] == s.n && x.d[2] == s.c && w.d[0] == x.d[0] && w.d[1] == s.n - 1 && y.d[0] == x.d[0]
        && y.d[1] == outputTokens(s) && y.d[2] == s.c;
    bool const types = (in[0].type == nvinfer1::DataType::kFLOAT || in[0].type == nvinfer1::DataType::kHALF)
        && in[1].type == in[0].type && out[0].type == in[0].type;
    if (shapes && types)
        return true;
    char message[200];
    std::snprintf(message, sizeof(message),
        "enqueue: tensors do not match the stage (n=%d c=%d out=%d; tokens %d-D, importance %d-D, output %d-D%s)",
        s.n, s.c, outputTokens(s), x.nbDims, w.nbDims, y.nbDims, types ? "" : ", or an unsupported type");
    logError(message);
    return false;
}

} // namespace plugin
} // namespace tdm
