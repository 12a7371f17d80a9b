/* perm.c: the Feistel permutation behind perm.h. */
#include "perm.h"

#include "rng.h"

#include "check.h"

void qtx_perm_init(qtx_perm *p, uint64_t n, uint64_t seed, uint64_t epoch) {
    QTX_CHECK(n >= 1, "qtx_perm_init: empty domain");
    int h = 1;
    /* smallest h with 2^(2h) >= n; h = 32 covers the whole 64-bit range */
    while (h < 32 && (((uint64_t)1 << (2 * h)) < n)) h++;
    p->n = n;
    p->half_bits = h;
    p->half_mask = h == 32 ? ~(uint64_t)0 >> 32 : ((uint64_t)1 << h) - 1;
    uint64_t k = qtx_mix64(seed ^ 0x5175616474726978ULL) ^ qtx_mix64(epoch + 0x9e3779b97f4a7c15ULL);
    for (int r = 0; r < QTX_PERM_ROUNDS; r++) {
        k = qtx_mix64(k + 0x9e3779b97f4a7c15ULL);
        p->keys[r] = k;
    }
}

static uint64_t feistel(const qtx_perm *p, uint64_t x) {
    int h = p->half_bits;
    uint64_t m = p->half_mask;
    uint64_t left = (x >> h) & m, right = x & m;
    for (int r = 0; r < QTX_PERM_ROUNDS; r++) {
        uint64_t f = qtx_mix64(right ^ p->keys[r]) & m;
        uint64_t t = left ^ f;
        left = right;
        right = t;
    }
    return (left << h) | right;
}

uint64_t qtx_perm_apply(const qtx_perm *p, uint64_t i) {
    /* Cycle walking: the network permutes [0, 4^h); following i's cycle until it lands back in
     * [0, n) restricts it to a permutation of [0, n). 4^h < 4n, so under 4 steps expected. */
    uint64_t x = i;
    do x = feistel(p, x);
    while (x >= p->n);
    return x;
}
