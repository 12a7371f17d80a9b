/* vmath.h: a branch-free expf that the compiler vectorises inside `omp simd` loops.
 *
 * glibc only offers vector expf under -ffast-math, which would also break the -INFINITY
 * masks of the softmax. This one is Cephes' polynomial after range reduction by ln 2:
 * within 2 ulp of expf on [-87, 88]; below -87.3 it returns 0, above 88.7 +inf.
 */
#ifndef QTX_VMATH_H
#define QTX_VMATH_H

#include <stdint.h>
#include <string.h>

static inline float qtx_expf(float x) {
    const float hi = 88.3762626647949f, lo = -87.3365447504019f;
    float xc = x < lo ? lo : x;
    xc = xc > hi ? hi : xc;
    /* n = round(x / ln 2) by the 1.5 * 2^23 trick; r = x - n ln 2 in two parts. */
    const float fn = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)fn + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    const float y = x < lo ? 0.0f : p * scale;
    return x > hi ? __builtin_inff() : y;
}

#endif
