/* perm.h: a keyed pseudorandom permutation of [0, n) that needs no O(n) table.
 *
 * The loader's epoch order: position p of epoch e holds sample qtx_perm_apply(p). It is a
 * balanced Feistel network over the smallest 2^(2h) >= n, with cycle walking to stay inside
 * [0, n): a bijection by construction, computable at any position in O(1) expected time, and
 * a function of (seed, epoch) only, so every rank and every layout draws the same order.
 */
#ifndef QTX_PERM_H
#define QTX_PERM_H

#include <stdint.h>

#define QTX_PERM_ROUNDS 6

typedef struct qtx_perm {
    uint64_t n;
    int half_bits; /* h: the network permutes 2h-bit values */
    uint64_t half_mask;
    uint64_t keys[QTX_PERM_ROUNDS];
} qtx_perm;

/* n >= 1. */
void qtx_perm_init(qtx_perm *p, uint64_t n, uint64_t seed, uint64_t epoch);

/* i < n; returns a value < n, distinct for distinct i. */
uint64_t qtx_perm_apply(const qtx_perm *p, uint64_t i);

#endif
