/*
 * cudacpu: CUDA's vector types, dim3 and the runtime's error codes and handle types (see README.md).
 */
#pragma once

#include <cstddef>

#pragma GCC visibility push(hidden)

// ---- vector types --------------------------------------------------------------------------------------------------

#define CUDACPU_VEC(T, name, a2, a4)                                                                                 \
    struct name##1 { T x; };                                                                                         \
    struct alignas(a2) name##2 { T x, y; };                                                                          \
    struct name##3 { T x, y, z; };                                                                                   \
    struct alignas(a4) name##4 { T x, y, z, w; };                                                                    \
    inline name##1 make_##name##1(T x) { return name##1{x}; }                                                       \
    inline name##2 make_##name##2(T x, T y) { return name##2{x, y}; }                                               \
    inline name##3 make_##name##3(T x, T y, T z) { return name##3{x, y, z}; }                                       \
    inline name##4 make_##name##4(T x, T y, T z, T w) { return name##4{x, y, z, w}; }

CUDACPU_VEC(signed char, char, 2, 4)
CUDACPU_VEC(unsigned char, uchar, 2, 4)
CUDACPU_VEC(short, short, 4, 8)
CUDACPU_VEC(unsigned short, ushort, 4, 8)
CUDACPU_VEC(int, int, 8, 16)
CUDACPU_VEC(unsigned int, uint, 8, 16)
CUDACPU_VEC(long long, longlong, 16, 16)
CUDACPU_VEC(unsigned long long, ulonglong, 16, 16)
CUDACPU_VEC(float, float, 8, 16)
CUDACPU_VEC(double, double, 16, 16)
#undef CUDACPU_VEC

struct dim3
{
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

// ---- errors (the CUDA runtime's codes) -----------------------------------------------------------------------------

enum cudaError
{
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidSymbol = 13,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorLaunchFailure = 719,
    cudaErrorNotSupported = 801,
    cudaErrorUnknown = 999,
};
typedef enum cudaError cudaError_t;

typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;

#pragma GCC visibility pop
