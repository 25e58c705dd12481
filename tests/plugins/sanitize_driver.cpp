/*
 * The fused merge stage's host path (plugins/tdm_merge/batMerge.h) on degenerate inputs, built by
 * tests/plugins/test_kernel_cpu.py with -fsanitize=address,undefined: every buffer is allocated to its exact size
 * (so a read or write past it is reported), the workspace is poisoned (0xFF: NaN floats, -1 ints; 0x7F: 3.4e38
 * floats, 2.1e9 ints) as a GPU's is never zeroed, and every selection is checked to be a permutation or in range.
 * Prints "cases <count> ok" and exits 0, or names the first broken case and exits 1.
 */
#include "batMerge.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

namespace
{

struct Rng // a small LCG: the same inputs on every machine
{
    uint64_t state;
    float uniform() // [0, 1)
    {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<float>(state >> 40) / 16777216.0f;
    }
    float normalish() { return (uniform() + uniform() + uniform() - 1.5f) * 2.0f; }
};

enum class Case
{
    kRandom,
    kNanSome,
    kNanAll,
    kInfinite,
    kAllEqual,
    kZeroTokens,
    kDuplicates,
    kNonFiniteTokens,
};

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

void fill(Case which, tdm::BatSizes const& s, Rng& rng, std::vector<float>& x, std::vector<float>& w)
{
    for (float& v : x)
        v = rng.normalish();
    for (float& v : w)
        v = rng.uniform();
    int32_t const p = s.n - 1;
    switch (which)
    {
    case Case::kRandom: break;
    case Case::kNanSome:
        for (int32_t i = 0; i < p; i += 3)
            w[i] = kNan;
        break;
    case Case::kNanAll:
        for (float& v : w)
            v = kNan;
        break;
    case Case::kInfinite:
        for (int32_t i = 0; i < p; i += 4)
            w[i] = i % 8 == 0 ? kInf : -kInf;
        break;
    case Case::kAllEqual:
        for (float& v : w)
            v = 0.0f;
        break;
    case Case::kZeroTokens:
        for (int32_t t = 1; t < s.n; t += 2) // every other token all zero: NaN cosines, zero distances
            std::memset(&x[size_t(t) * s.c], 0, sizeof(float) * s.c);
        break;
    case Case::kDuplicates:
        for (int32_t t = 2; t < s.n; ++t)
            std::memcpy(&x[size_t(t) * s.c], &x[size_t(1 + t % 3) * s.c], sizeof(float) * s.c);
        break;
    case Case::kNonFiniteTokens:
        for (int32_t t = 1; t < s.n; t += 5)
            x[size_t(t) * s.c + t % s.c] = t % 10 == 1 ? kInf : kNan;
        break;
    }
}

//! `count` values, each in [0, range), all distinct when `distinct`.
bool inRange(int32_t const* v, int32_t count, int32_t range, bool distinct)
{
    std::vector<int32_t> seen(static_cast<size_t>(range), 0);
    for (int32_t i = 0; i < count; ++i)
    {
        if (v[i] < 0 || v[i] >= range || (distinct && seen[static_cast<size_t>(v[i])]++))
            return false;
    }
    return true;
}

//! Every selection of one image is what its name promises.
char const* brokenSelection(tdm::BatSizes const& s, tdm::Workspace const& ws)
{
    int32_t const ka = tdm::countA(s), kb = tdm::countB(s), l = tdm::countInattentive(s), r = s.pairs;
    if (!inRange(ws.order, s.n - 1, s.n - 1, true))
        return "order is not a permutation";
    std::vector<int32_t> a(ws.src, ws.src + r);
    a.insert(a.end(), ws.unm, ws.unm + (ka - r));
    if (!inRange(a.data(), ka, ka, true))
        return "src and unm do not split the A tokens";
    if (!inRange(ws.dst, r, kb, false))
        return "dst out of range";
    if (!inRange(ws.centres, s.clusters, l, true))
        return "centres not distinct inattentive tokens";
    if (!inRange(ws.labels, l, s.clusters, false))
        return "label out of range";
    return nullptr;
}

int run(tdm::BatSizes const& s, Case which, unsigned char poison, int32_t batch, uint64_t seed)
{
    Rng rng{seed};
    std::vector<float> x(size_t(batch) * s.n * s.c), w(size_t(batch) * (s.n - 1));
    for (int32_t b = 0; b < batch; ++b)
    {
        std::vector<float> xb(size_t(s.n) * s.c), wb(size_t(s.n - 1));
        fill(which, s, rng, xb, wb);
        std::copy(xb.begin(), xb.end(), x.begin() + size_t(b) * xb.size());
        std::copy(wb.begin(), wb.end(), w.begin() + size_t(b) * wb.size());
    }
    size_t const per = tdm::workspaceBytes(s);
    std::unique_ptr<int32_t[]> workspace(new int32_t[per * batch / 4]); // exactly the bytes asked for
    std::memset(workspace.get(), poison, per * batch);
    std::unique_ptr<float[]> out(new float[size_t(batch) * tdm::outputTokens(s) * s.c]);
    tdm::batMergeHost(s, batch, x.data(), w.data(), out.get(), workspace.get());
    for (int32_t b = 0; b < batch; ++b)
    {
        tdm::Workspace const ws = tdm::workspaceAt(s, reinterpret_cast<char*>(workspace.get()) + b * per);
        if (char const* why = brokenSelection(s, ws))
        {
            std::printf("case %d (n %d, c %d, keep %d, pairs %d, clusters %d, knn %d, poison 0x%02x): %s\n",
                static_cast<int>(which), s.n, s.c, s.keep, s.pairs, s.clusters, s.knn, poison, why);
            return 1;
        }
    }
    return 0;
}

} // namespace

int main()
{
    tdm::BatSizes const sizes[] = {
        {33, 16, 20, 5, 4, 5},     // the CPU test's shape
        {4, 4, 2, 1, 1, 5},        // the smallest stage: one A, one B, one inattentive token, knn > L
        {41, 8, 24, 12, 16, 3},    // every A token matched, every inattentive token a centre
        {197, 384, 138, 15, 15, 5} // DeiT-S stage 1
    };
    Case const cases[] = {Case::kRandom, Case::kNanSome, Case::kNanAll, Case::kInfinite, Case::kAllEqual,
        Case::kZeroTokens, Case::kDuplicates, Case::kNonFiniteTokens};
    int count = 0;
    for (tdm::BatSizes const& s : sizes)
    {
        if (tdm::validateSizes(s) != 0)
        {
            std::printf("invalid sizes in the driver: %s\n", tdm::batMergeSizeError(tdm::validateSizes(s)));
            return 1;
        }
        for (Case which : cases)
            for (unsigned char poison : {static_cast<unsigned char>(0xFF), static_cast<unsigned char>(0x7F)})
            {
                if (run(s, which, poison, s.n > 100 ? 1 : 2, 1234u + static_cast<uint64_t>(count)) != 0)
                    return 1;
                ++count;
            }
    }
    std::printf("cases %d ok\n", count);
    return 0;
}
