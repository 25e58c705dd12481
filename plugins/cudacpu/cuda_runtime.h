/*
 * cudacpu: the header to force-include (g++ -x c++ -include cuda_runtime.h -I plugins/cudacpu) when compiling CUDA
 * C++ for the CPU, as nvcc does with its own. It defines the CUDA keywords and __CUDACC__ / __CUDA_ARCH__ (so device
 * code takes its device branches), and brings in the runtime API, the device functions and __half. Launches
 * (`<<<>>>`) and `extern __shared__` are rewritten by translate.py. See README.md.
 */
#pragma once

#ifndef __CUDACC__
#define __CUDACC__ 1
#endif
#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ 870 // device branches are compiled (sm_87, AGX Orin); -D__CUDA_ARCH__=900 for another
#endif
#define __CUDACPU__ 1

// system headers first: some spell __attribute__((__noinline__)), which a keyword macro would break
#include <cfloat>
#include <climits>
#include <cmath>
#include <limits>
#include <memory>

#include "cuda_runtime_api.h"
#include "cudacpu_device.h"
#include "cuda_fp16.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __constant__
#define __managed__
#define __shared__ static // per block: blocks run one after another; `extern __shared__` is rewritten
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __grid_constant__
// not defined: __noinline__ (libstdc++ uses the name inside __attribute__)
