/*
 * cudacpu: the host side of the CUDA runtime API on the CPU (see README.md). "Device" memory is host memory, every
 * stream is the calling thread (work runs when it is enqueued), one device. Only what kernels' host code commonly
 * calls; add more here when a kernel needs it.
 */
#pragma once

#include "cudacpu_core.h"

#include <chrono>

// private to each binary: two libraries built with cudacpu in one process keep their own engines
#pragma GCC visibility push(hidden)

#ifndef CUDART_VERSION
#define CUDART_VERSION 11040 // the oldest runtime the project supports (JetPack 5); code gated on newer is not built
#endif

enum cudaMemcpyKind
{
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaFuncAttribute
{
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

enum cudaDeviceAttr
{
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxBlockDimX = 2,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrWarpSize = 10,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrMaxThreadsPerMultiProcessor = 39,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02

struct CUevent_st
{
    std::chrono::steady_clock::time_point when;
};

namespace cudacpu
{
namespace detail
{
inline cudaError_t record(cudaError_t err)
{
    if (err != cudaSuccess)
        gEngine.lastError = err;
    return err;
}
} // namespace detail
} // namespace cudacpu

inline cudaError_t cudaGetLastError()
{
    cudaError_t const err = cudacpu::detail::gEngine.lastError;
    cudacpu::detail::gEngine.lastError = cudaSuccess;
    return err;
}

inline cudaError_t cudaPeekAtLastError()
{
    return cudacpu::detail::gEngine.lastError;
}

inline char const* cudaGetErrorName(cudaError_t err)
{
    switch (err)
    {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidSymbol: return "cudaErrorInvalidSymbol";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    default: return "cudaErrorUnknown";
    }
}

inline char const* cudaGetErrorString(cudaError_t err)
{
    return cudaGetErrorName(err);
}

// ---- device ---------------------------------------------------------------------------------------------------------

inline cudaError_t cudaGetDeviceCount(int* count)
{
    *count = 1;
    return cudaSuccess;
}

inline cudaError_t cudaGetDevice(int* device)
{
    *device = 0;
    return cudaSuccess;
}

inline cudaError_t cudaSetDevice(int device)
{
    return cudacpu::detail::record(device == 0 ? cudaSuccess : cudaErrorInvalidDevice);
}

inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device)
{
    if (device != 0)
        return cudacpu::detail::record(cudaErrorInvalidDevice);
    switch (attr)
    {
    case cudaDevAttrMaxThreadsPerBlock:
    case cudaDevAttrMaxBlockDimX: *value = static_cast<int>(cudacpu::kMaxThreads); break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(cudacpu::kDefaultDynamicShared); break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(cudacpu::kMaxDynamicShared); break;
    case cudaDevAttrWarpSize: *value = static_cast<int>(cudacpu::kWarpSize); break;
    case cudaDevAttrMultiProcessorCount: *value = cudacpu::detail::gEngine.multiProcessors; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *value = 2048; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 8; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 7; break;
    default: return cudacpu::detail::record(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

inline cudaError_t cudaDeviceSynchronize()
{
    return cudaSuccess;
}

inline cudaError_t cudaFuncSetAttribute(void const* key, cudaFuncAttribute attr, int value)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
        return cudaSuccess;
    if (value < 0 || static_cast<size_t>(value) > cudacpu::kMaxDynamicShared)
        return cudacpu::detail::record(cudaErrorInvalidValue);
    for (cudacpu::detail::SharedLimit& l : cudacpu::detail::gSharedLimits)
        if (l.kernel == key)
        {
            l.bytes = static_cast<size_t>(value);
            return cudaSuccess;
        }
    cudacpu::detail::gSharedLimits.push_back({key, static_cast<size_t>(value)});
    return cudaSuccess;
}

template <typename... P>
cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value)
{
    return cudaFuncSetAttribute(reinterpret_cast<void const*>(kernel), attr, value);
}

//! Blocks of `kernel` that fit on one multiprocessor: 2048 threads and 228 KB of shared memory, nothing else.
template <typename... P>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, void (*)(P...), int blockSize,
    size_t dynamicShared)
{
    if (blockSize <= 0)
        return cudacpu::detail::record(cudaErrorInvalidValue);
    int const byThreads = 2048 / blockSize;
    int const byShared = dynamicShared == 0 ? byThreads : static_cast<int>((228 * 1024) / dynamicShared);
    *blocks = byThreads < byShared ? byThreads : byShared;
    return cudaSuccess;
}

// ---- memory: host memory --------------------------------------------------------------------------------------------

inline cudaError_t cudaMalloc(void** ptr, size_t bytes)
{
    *ptr = std::malloc(bytes == 0 ? 1 : bytes);
    return cudacpu::detail::record(*ptr != nullptr ? cudaSuccess : cudaErrorMemoryAllocation);
}

template <typename T>
cudaError_t cudaMalloc(T** ptr, size_t bytes)
{
    return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}

inline cudaError_t cudaFree(void* ptr)
{
    std::free(ptr);
    return cudaSuccess;
}

inline cudaError_t cudaMallocHost(void** ptr, size_t bytes)
{
    return cudaMalloc(ptr, bytes);
}

inline cudaError_t cudaFreeHost(void* ptr)
{
    return cudaFree(ptr);
}

inline cudaError_t cudaMemcpy(void* dst, void const* src, size_t bytes, cudaMemcpyKind kind)
{
    if (static_cast<int>(kind) < 0 || static_cast<int>(kind) > 4)
        return cudacpu::detail::record(cudaErrorInvalidMemcpyDirection);
    if (bytes > 0 && (dst == nullptr || src == nullptr))
        return cudacpu::detail::record(cudaErrorInvalidValue);
    std::memmove(dst, src, bytes);
    return cudaSuccess;
}

inline cudaError_t cudaMemcpyAsync(void* dst, void const* src, size_t bytes, cudaMemcpyKind kind,
    cudaStream_t = nullptr)
{
    return cudaMemcpy(dst, src, bytes, kind);
}

inline cudaError_t cudaMemset(void* dst, int value, size_t bytes)
{
    if (bytes > 0 && dst == nullptr)
        return cudacpu::detail::record(cudaErrorInvalidValue);
    std::memset(dst, value, bytes);
    return cudaSuccess;
}

inline cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t = nullptr)
{
    return cudaMemset(dst, value, bytes);
}

template <typename T>
cudaError_t cudaMemcpyToSymbol(T& symbol, void const* src, size_t bytes, size_t offset = 0,
    cudaMemcpyKind = cudaMemcpyHostToDevice)
{
    if (offset + bytes > sizeof(T))
        return cudacpu::detail::record(cudaErrorInvalidValue);
    std::memcpy(reinterpret_cast<char*>(&symbol) + offset, src, bytes);
    return cudaSuccess;
}

template <typename T>
cudaError_t cudaMemcpyFromSymbol(void* dst, T const& symbol, size_t bytes, size_t offset = 0,
    cudaMemcpyKind = cudaMemcpyDeviceToHost)
{
    if (offset + bytes > sizeof(T))
        return cudacpu::detail::record(cudaErrorInvalidValue);
    std::memcpy(dst, reinterpret_cast<char const*>(&symbol) + offset, bytes);
    return cudaSuccess;
}

// ---- streams and events: everything already ran when it was enqueued ----------------------------------------------

inline cudaError_t cudaStreamCreate(cudaStream_t* stream)
{
    *stream = reinterpret_cast<cudaStream_t>(new char(0));
    return cudaSuccess;
}

inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int)
{
    return cudaStreamCreate(stream);
}

inline cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    delete reinterpret_cast<char*>(stream);
    return cudaSuccess;
}

inline cudaError_t cudaStreamSynchronize(cudaStream_t)
{
    return cudaSuccess;
}

inline cudaError_t cudaStreamQuery(cudaStream_t)
{
    return cudaSuccess;
}

inline cudaError_t cudaEventCreate(cudaEvent_t* event)
{
    *event = new CUevent_st{};
    return cudaSuccess;
}

inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int)
{
    return cudaEventCreate(event);
}

inline cudaError_t cudaEventDestroy(cudaEvent_t event)
{
    delete event;
    return cudaSuccess;
}

inline cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t = nullptr)
{
    event->when = std::chrono::steady_clock::now();
    return cudaSuccess;
}

inline cudaError_t cudaEventSynchronize(cudaEvent_t)
{
    return cudaSuccess;
}

inline cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned int = 0)
{
    return cudaSuccess;
}

inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end)
{
    *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
    return cudaSuccess;
}

#pragma GCC visibility pop
