/* rng.c: a stateless hash RNG (splitmix64 finalizer rounds over the counter). */
#include "rng.h"

#include <math.h>

uint64_t qtx_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t qtx_rng_stream(const char *name) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return qtx_mix64(h);
}

uint64_t qtx_rng_bits(uint64_t seed, uint64_t stream, uint64_t index) {
    uint64_t key = qtx_mix64(seed * 0x9e3779b97f4a7c15ULL ^ stream);
    return qtx_mix64(key + qtx_mix64(index + 0x632be59bd9b4e019ULL));
}

double qtx_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
    return (double)(qtx_rng_bits(seed, stream, index) >> 11) * 0x1.0p-53;
}

double qtx_rng_normal(uint64_t seed, uint64_t stream, uint64_t index) {
    uint64_t b = qtx_rng_bits(seed, stream, index);
    /* Two 32-bit uniforms; u1 in (0, 1] so the log is finite. */
    double u1 = ((double)(b >> 32) + 1.0) * 0x1.0p-32;
    double u2 = (double)(b & 0xffffffffULL) * 0x1.0p-32;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
