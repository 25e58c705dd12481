/*
 * Logging of the TdmBatMerge plugin library through the logger TensorRT hands over (batMergePlugins.cpp):
 * setLoggerFinder's finder (TensorRT 8.6+, asked at every message, from the calling thread, as TensorRT requires),
 * else the logger given to initTdmMergePlugins(logger, namespace); with neither, errors go to stderr.
 */
#pragma once

#include "NvInfer.h"

namespace tdm
{
namespace plugin
{

//! One message, prefixed "TdmBatMerge: ".
void logMessage(nvinfer1::ILogger::Severity severity, char const* message) noexcept;

inline void logError(char const* message) noexcept
{
    logMessage(nvinfer1::ILogger::Severity::kERROR, message);
}

} // namespace plugin
} // namespace tdm
