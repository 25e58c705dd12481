/*
 * cudacpu: __half on the CPU (see README.md). Conversions round to nearest even like the GPU's __float2half; half
 * arithmetic is done in float and rounded once, which is exact for + - * / (float has more than 2 x 11 + 2 bits);
 * __hfma rounds through double.
 */
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

// private to each binary: two libraries built with cudacpu in one process keep their own engines
#pragma GCC visibility push(hidden)

namespace cudacpu
{
namespace detail
{

inline unsigned short floatToHalf(float f)
{
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t const sign = (x >> 16) & 0x8000u;
    uint32_t const a = x & 0x7fffffffu;
    if (a >= 0x7f800000u) // Inf, NaN (quiet, payload kept)
        return static_cast<unsigned short>(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0u));
    if (a >= 0x477ff000u) // >= 65520: rounds to Inf
        return static_cast<unsigned short>(sign | 0x7c00u);
    if (a < 0x38800000u) // below 2^-14: a subnormal half (or zero), in units of 2^-24
    {
        if (a <= 0x33000000u) // <= 2^-25: rounds to zero (2^-25 is a tie, to even)
            return static_cast<unsigned short>(sign);
        uint32_t const mant = (a & 0x7fffffu) | 0x800000u;
        int const shift = 126 - static_cast<int>(a >> 23);
        uint32_t q = mant >> shift;
        uint32_t const rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u)))
            ++q;
        return static_cast<unsigned short>(sign | q);
    }
    uint32_t h = (a - 0x38000000u) >> 13; // rebias the exponent 127 -> 15
    uint32_t const rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        ++h;
    return static_cast<unsigned short>(sign | h);
}

inline float halfToFloat(unsigned short h)
{
    uint32_t const sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
    uint32_t const exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t x;
    if (exp == 0)
    {
        float const v = std::ldexp(static_cast<float>(mant), -24);
        return sign ? -v : v;
    }
    if (exp == 31)
        x = sign | 0x7f800000u | (mant << 13);
    else
        x = sign | ((exp + 112u) << 23) | (mant << 13);
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

} // namespace detail
} // namespace cudacpu

struct __half
{
    unsigned short __x;
    __half() = default;
    __half(float f) : __x(cudacpu::detail::floatToHalf(f)) {}
    __half(double f) : __x(cudacpu::detail::floatToHalf(static_cast<float>(f))) {}
    __half(int i) : __x(cudacpu::detail::floatToHalf(static_cast<float>(i))) {}
    operator float() const { return cudacpu::detail::halfToFloat(__x); }
};

struct __half2
{
    __half x, y;
};

typedef __half half;
typedef __half2 half2;

inline float __half2float(__half h) { return cudacpu::detail::halfToFloat(h.__x); }
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u)
{
    __half h;
    h.__x = u;
    return h;
}
inline short __half_as_short(__half h) { return static_cast<short>(h.__x); }
inline __half __short_as_half(short s) { return __ushort_as_half(static_cast<unsigned short>(s)); }

inline __half __hadd(__half a, __half b) { return __half(__half2float(a) + __half2float(b)); }
inline __half __hsub(__half a, __half b) { return __half(__half2float(a) - __half2float(b)); }
inline __half __hmul(__half a, __half b) { return __half(__half2float(a) * __half2float(b)); }
inline __half __hdiv(__half a, __half b) { return __half(__half2float(a) / __half2float(b)); }
inline __half __hneg(__half a) { return __ushort_as_half(static_cast<unsigned short>(a.__x ^ 0x8000u)); }
inline __half __habs(__half a) { return __ushort_as_half(static_cast<unsigned short>(a.__x & 0x7fffu)); }
inline __half __hfma(__half a, __half b, __half c)
{
    return __half(static_cast<float>(
        static_cast<double>(__half2float(a)) * __half2float(b) + static_cast<double>(__half2float(c))));
}
inline bool __heq(__half a, __half b) { return __half2float(a) == __half2float(b); }
inline bool __hne(__half a, __half b) { return __half2float(a) != __half2float(b); }
inline bool __hlt(__half a, __half b) { return __half2float(a) < __half2float(b); }
inline bool __hle(__half a, __half b) { return __half2float(a) <= __half2float(b); }
inline bool __hgt(__half a, __half b) { return __half2float(a) > __half2float(b); }
inline bool __hge(__half a, __half b) { return __half2float(a) >= __half2float(b); }
inline bool __hisnan(__half a) { return (a.__x & 0x7fffu) > 0x7c00u; }
inline int __hisinf(__half a) { return (a.__x & 0x7fffu) == 0x7c00u ? ((a.__x & 0x8000u) ? -1 : 1) : 0; }
inline __half __hmax(__half a, __half b) { return __half(std::fmax(__half2float(a), __half2float(b))); }
inline __half __hmin(__half a, __half b) { return __half(std::fmin(__half2float(a), __half2float(b))); }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__half(a), __half(b)}; }
inline __half2 __float2half2_rn(float a) { return __half2{__half(a), __half(a)}; }
inline float __low2float(__half2 h) { return __half2float(h.x); }
inline float __high2float(__half2 h) { return __half2float(h.y); }

#pragma GCC visibility pop
