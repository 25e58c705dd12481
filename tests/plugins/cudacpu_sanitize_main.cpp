/*
 * The real kernel (batMergeKernel.cu through plugins/cudacpu) under AddressSanitizer and UBSan
 * (tests/plugins/test_cuda_on_cpu.py::test_kernel_under_sanitizers): every buffer exactly as large as the launcher
 * says, the workspace poisoned, inputs with NaN and infinite importances, all-equal importances, zero and
 * infinite tokens, fp32 and fp16. A read or write outside a buffer in any kernel of the chain stops the run.
 *
 *   cudacpu_sanitize_main N C KEEP PAIRS CLUSTERS KNN [N C KEEP ...]
 */
#include "batMergeKernel.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace
{

enum class Inputs
{
    kRandom,
    kNanImportance,
    kEqualImportance,
    kZeroTokens,
    kInfiniteTokens,
};

float uniform(uint32_t& state)
{
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / 16777216.0f;
}

template <typename T>
int run(tdm::BatSizes const& s, int32_t batch, Inputs kind, tdm::TokenType type)
{
    uint32_t state = 7u + static_cast<uint32_t>(kind);
    std::vector<float> x(size_t(batch) * s.n * s.c), w(size_t(batch) * (s.n - 1));
    for (float& v : x)
        v = uniform(state) * 2.0f - 1.0f;
    for (float& v : w)
        v = uniform(state);
    float const inf = INFINITY, nan = NAN;
    switch (kind)
    {
    case Inputs::kNanImportance:
        for (size_t i = 0; i < w.size(); i += 3)
            w[i] = nan;
        w[1] = inf;
        w[4] = -inf;
        break;
    case Inputs::kEqualImportance:
        for (float& v : w)
            v = 0.25f;
        break;
    case Inputs::kZeroTokens:
        for (size_t i = 0; i < x.size() / 2; ++i)
            x[i] = 0.0f;
        break;
    case Inputs::kInfiniteTokens:
        x[size_t(s.c) * 3 + 1] = inf;
        x[x.size() - 5] = nan;
        break;
    case Inputs::kRandom: break;
    }
    std::vector<T> xt(x.begin(), x.end()), wt(w.begin(), w.end());
    std::vector<T> out(size_t(batch) * tdm::outputTokens(s) * s.c); // exactly the output
    std::vector<unsigned char> ws(tdm::batMergeWorkspaceSize(s, batch), 0xFF); // exactly the workspace, garbage
    cudaError_t const err = tdm::batMergeForward(s, batch, type, xt.data(), wt.data(), out.data(), ws.data(), nullptr);
    if (err != cudaSuccess)
    {
        std::printf("error %d %s\n", int(err), cudacpu::lastMessage());
        return 1;
    }
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 7 || (argc - 1) % 6 != 0)
    {
        std::fprintf(stderr, "usage: %s N C KEEP PAIRS CLUSTERS KNN [...]\n", argv[0]);
        return 2;
    }
    int runs = 0, failures = 0;
    for (int a = 1; a < argc; a += 6)
    {
        tdm::BatSizes const s{std::atoi(argv[a]), std::atoi(argv[a + 1]), std::atoi(argv[a + 2]),
            std::atoi(argv[a + 3]), std::atoi(argv[a + 4]), std::atoi(argv[a + 5])};
        for (Inputs kind : {Inputs::kRandom, Inputs::kNanImportance, Inputs::kEqualImportance, Inputs::kZeroTokens,
                 Inputs::kInfiniteTokens})
        {
            failures += run<float>(s, 2, kind, tdm::TokenType::kFLOAT);
            ++runs;
        }
        failures += run<__half>(s, 2, Inputs::kRandom, tdm::TokenType::kHALF);
        ++runs;
    }
    std::printf("runs %d failures %d\n", runs, failures);
    return failures == 0 ? 0 : 1;
}
