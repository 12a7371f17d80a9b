/* rng.h: counter-based random numbers.
 *
 * A value depends only on (seed, stream, index), never on call order, so every parallel
 * layout can draw exactly the global weights it owns: element i of tensor "blk.3.attn_q" is
 * the same number on one rank or on 64.
 */
#ifndef QTX_RNG_H
#define QTX_RNG_H

#include <stdint.h>

/* splitmix64's finalizer: a bijective 64-bit mixer. */
uint64_t qtx_mix64(uint64_t z);

/* A 64-bit stream id from a name (FNV-1a then mixed). */
uint64_t qtx_rng_stream(const char *name);

/* 64 random bits for (seed, stream, index). */
uint64_t qtx_rng_bits(uint64_t seed, uint64_t stream, uint64_t index);

/* Uniform in [0, 1) and standard normal (Box-Muller on one 64-bit draw). */
double qtx_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index);
double qtx_rng_normal(uint64_t seed, uint64_t stream, uint64_t index);

#endif
