/*
 * CUDA semantics that plugins/cudacpu must reproduce, one line of results per feature (tests/plugins/
 * test_cuda_on_cpu.py::test_runtime_semantics compares them with values computed there). Plain CUDA: translated
 * by plugins/cudacpu/translate.py and compiled with g++; the misuse cases are cudacpu's own checks.
 */
#include <cstdio>
#include <cstring>
#include <vector>

__global__ void index3d(int* hits)
{
    unsigned const block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    unsigned const thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    atomicAdd(&hits[block * blockDim.x * blockDim.y * blockDim.z + thread], 1);
}

__global__ void sharedSum(int* out)
{
    __shared__ int s[256];
    int const t = threadIdx.x;
    s[t] = t;
    if (t + 200 < 256)
        s[t + 200] = 0;
    __syncthreads();
    for (int stride = 128; stride > 0; stride /= 2)
    {
        if (t < stride)
            s[t] += s[t + stride];
        __syncthreads();
    }
    if (t == 0)
        *out = s[0];
}

__global__ void dynamicShared(unsigned* out, int count)
{
    extern __shared__ unsigned dyn[];
    for (int i = threadIdx.x; i < count; i += blockDim.x)
        dyn[i] = i;
    __syncthreads();
    if (threadIdx.x == 0)
    {
        unsigned sum = 0;
        for (int i = 0; i < count; ++i)
            sum += dyn[i];
        *out = sum;
    }
}

__global__ void shuffles(int* xorSum, int* down, int* upW8, int* idxW16, unsigned* votes)
{
    int const t = threadIdx.x, lane = t % warpSize;
    int v = lane;
    for (int offset = 16; offset > 0; offset /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    if (lane == 0)
        xorSum[t / warpSize] = v;
    down[t] = __shfl_down_sync(0xffffffffu, t, 3);
    upW8[t] = __shfl_up_sync(0xffffffffu, t, 2, 8);
    idxW16[t] = __shfl_sync(0xffffffffu, t, 5, 16);
    unsigned const ballot = __ballot_sync(0xffffffffu, lane % 2 == 0);
    int const any = __any_sync(0xffffffffu, lane == 3);
    int const all = __all_sync(0xffffffffu, lane < 31);
    if (lane == 0)
    {
        votes[t / warpSize] = ballot;
        votes[2] = any;
        votes[3] = all;
    }
}

__global__ void atomics(int* isum, float* fsum, int* mn, int* mx, int* flag, int* winners)
{
    for (int i = 0; i < 10; ++i)
    {
        atomicAdd(isum, 1);
        atomicAdd(fsum, 1.0f);
    }
    atomicMin(mn, int(threadIdx.x));
    atomicMax(mx, int(threadIdx.x));
    if (atomicCAS(flag, 0, int(threadIdx.x) + 1) == 0)
        atomicAdd(winners, 1);
}

__global__ void barrierVotes(int* out)
{
    int const t = threadIdx.x;
    int const count = __syncthreads_count(t % 2 == 0);
    int const all = __syncthreads_and(t < 0);
    int const any = __syncthreads_or(t == 7);
    if (t == 0)
    {
        out[0] = count;
        out[1] = all;
        out[2] = any;
    }
}

__global__ void deadlock(int* out)
{
    if (threadIdx.x < 16)
        out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, int(threadIdx.x), 1);
    else
        __syncthreads();
}

__global__ void maskMisuse(int* out)
{
    if (threadIdx.x < 16)
        out[threadIdx.x] = __shfl_sync(0x0000ffffu, int(threadIdx.x), 20);
}

__global__ void warpMisc(unsigned* out, unsigned* counter)
{
    unsigned const lane = threadIdx.x % warpSize;
    unsigned const sum = __reduce_add_sync(0xffffffffu, lane);
    unsigned const lo = __reduce_min_sync(0xffffffffu, 100u - lane);
    unsigned const hi = __reduce_max_sync(0xffffffffu, 100u - lane);
    __syncwarp();
    unsigned const old = atomicInc(counter, 4u); // wraps to 0 after 4: 32 increments leave 32 % 5 = 2
    float4 const v = make_float4(1.0f, 2.0f, 3.0f, float(lane));
    if (lane == 0)
    {
        out[0] = sum;
        out[1] = lo;
        out[2] = hi;
        out[3] = alignof(float4);
        out[4] = unsigned(v.x + v.y + v.z + v.w);
    }
    (void) old;
}

__global__ void earlyExit(int* out)
{
    if (threadIdx.x >= 16)
        return;
    __syncthreads();
    out[threadIdx.x] = 1;
}

__global__ void halves(unsigned short* out)
{
    float const in[] = {1.0f, 65504.0f, 65520.0f, 5.9604645e-8f, 2.9802322e-8f, 6.1035156e-5f};
    for (int i = 0; i < 6; ++i)
        out[i] = __half_as_ushort(__float2half(in[i]));
}

template <typename T>
T* deviceArray(size_t n, T fill)
{
    std::vector<T> host(n, fill);
    T* p = nullptr;
    cudaMalloc(&p, n * sizeof(T));
    cudaMemcpy(p, host.data(), n * sizeof(T), cudaMemcpyHostToDevice);
    return p;
}

template <typename T>
std::vector<T> back(T const* p, size_t n)
{
    std::vector<T> host(n);
    cudaMemcpy(host.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return host;
}

template <typename T>
void printLine(char const* name, std::vector<T> const& values, size_t n)
{
    std::printf("%s", name);
    for (size_t i = 0; i < n; ++i)
        std::printf(" %lld", static_cast<long long>(values[i]));
    std::printf("\n");
}

int main()
{
    int* hits = deviceArray<int>(144, 0);
    index3d<<<dim3(2, 3, 1), dim3(4, 2, 3)>>>(hits);
    int ones = 0;
    for (int h : back(hits, 144))
        ones += h == 1 ? 1 : 0;
    std::printf("index3d %s %d\n", cudaGetLastError() == cudaSuccess ? "ok" : "error", ones);

    int* sum = deviceArray<int>(1, -1);
    sharedSum<<<1, 200>>>(sum);
    printLine("shared_sum", back(sum, 1), 1);

    unsigned* dsum = deviceArray<unsigned>(1, 0);
    int const count = 16384; // 64 KB
    dynamicShared<<<1, 256, count * sizeof(unsigned)>>>(dsum, count);
    int const refused = cudaGetLastError();
    cudaFuncSetAttribute(dynamicShared, cudaFuncAttributeMaxDynamicSharedMemorySize, int(count * sizeof(unsigned)));
    dynamicShared<<<1, 256, count * sizeof(unsigned)>>>(dsum, count);
    std::printf("dynamic_shared %d %s %u\n", refused, cudaGetLastError() == cudaSuccess ? "ok" : "error",
        back(dsum, 1)[0]);

    int *xs = deviceArray<int>(2, 0), *down = deviceArray<int>(64, -1), *up = deviceArray<int>(64, -1),
        *idx = deviceArray<int>(64, -1);
    unsigned* votes = deviceArray<unsigned>(4, 7);
    shuffles<<<1, 64>>>(xs, down, up, idx, votes);
    printLine("shfl_xor_sum", back(xs, 2), 2);
    printLine("shfl_down", back(down, 64), 40);
    printLine("shfl_up_w8", back(up, 64), 40);
    printLine("shfl_idx_w16", back(idx, 64), 40);
    printLine("ballot", back(votes, 4), 4);

    int *isum = deviceArray<int>(1, 0), *mn = deviceArray<int>(1, 1000), *mx = deviceArray<int>(1, -1),
        *flag = deviceArray<int>(1, 0), *winners = deviceArray<int>(1, 0);
    float* fsum = deviceArray<float>(1, 0.0f);
    atomics<<<2, 32>>>(isum, fsum, mn, mx, flag, winners);
    std::printf("atomics %d %.1f %d %d %d\n", back(isum, 1)[0], back(fsum, 1)[0], back(mn, 1)[0], back(mx, 1)[0],
        back(winners, 1)[0]);

    int* bv = deviceArray<int>(3, -1);
    barrierVotes<<<1, 200>>>(bv);
    printLine("syncthreads_count", back(bv, 3), 3);

    barrierVotes<<<1, 2048>>>(bv);
    int const first = cudaGetLastError();
    std::printf("bad_config %d %d\n", first, int(cudaGetLastError()));

    int* scratch = deviceArray<int>(32, 0);
    deadlock<<<1, 32>>>(scratch);
    int const dead = cudaGetLastError();
    std::printf("deadlock %d %s\n", dead, cudacpu::lastMessage());
    maskMisuse<<<1, 32>>>(scratch);
    int const misuse = cudaGetLastError();
    std::printf("mask_misuse %d %s\n", misuse, cudacpu::lastMessage());

    unsigned *misc = deviceArray<unsigned>(5, 0), *counter = deviceArray<unsigned>(1, 0);
    warpMisc<<<1, 32>>>(misc, counter);
    std::vector<unsigned> m = back(misc, 5);
    m.push_back(back(counter, 1)[0]);
    printLine("warp_misc", m, 6);

    earlyExit<<<1, 32>>>(scratch);
    int const exited = cudaGetLastError();
    std::printf("early_exit %d %s\n", exited, cudacpu::lastMessage());

    unsigned short* hv = deviceArray<unsigned short>(6, 0);
    halves<<<1, 1>>>(hv);
    printLine("half", back(hv, 6), 6);
    return 0;
}
