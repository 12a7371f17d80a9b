/* tok_hash.c: the tokenizer's hash maps (byte string -> value, uint64 -> value) and the
 * SHA-256 that fingerprints tokenizer files for shard metadata. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* ---- byte-string hash: 8 bytes at a time, multiply-mix --------------------------------- */

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

uint64_t qtx_hash_bytes(const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * 0xff51afd7ed558ccdULL);
    while (n >= 8) {
        h = (h ^ load64(p)) * 0x100000001b3ULL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t tail = 0;
    memcpy(&tail, p, n);
    h = (h ^ tail) * 0x100000001b3ULL;
    return qtx_hash_u64(h);
}

/* ---- qtx_bmap -------------------------------------------------------------------------- */

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

void qtx_bmap_init(qtx_bmap *m, size_t cap_hint) {
    memset(m, 0, sizeof *m);
    m->cap = pow2_at_least(cap_hint * 2);
    m->slots = qtx_calloc(m->cap, sizeof *m->slots);
    m->keys_cap = 1024;
    m->keys = qtx_malloc(m->keys_cap);
}

void qtx_bmap_free(qtx_bmap *m) {
    free(m->slots);
    free(m->keys);
    memset(m, 0, sizeof *m);
}

void qtx_bmap_clear(qtx_bmap *m) {
    memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->n = 0;
    m->keys_len = 0;
}

uint64_t *qtx_bmap_find(const qtx_bmap *m, const void *key, size_t len, uint64_t h) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        qtx_bmap_slot *s = &m->slots[i];
        if (!s->hash) return NULL;
        if (s->hash == h && s->key_len == len && !memcmp(m->keys + s->key_off, key, len))
            return &s->value;
    }
}

static void bmap_grow(qtx_bmap *m) {
    qtx_bmap_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->cap *= 2;
    m->slots = qtx_calloc(m->cap, sizeof *m->slots);
    size_t mask = m->cap - 1;
    for (size_t j = 0; j < old_cap; j++) {
        if (!old[j].hash) continue;
        size_t i = old[j].hash & mask;
        while (m->slots[i].hash) i = (i + 1) & mask;
        m->slots[i] = old[j];
    }
    free(old);
}

uint64_t *qtx_bmap_put(qtx_bmap *m, const void *key, size_t len, uint64_t h, int *inserted) {
    QTX_CHECK(len <= UINT32_MAX, "hash map key of %zu bytes", len);
    if ((m->n + 1) * 2 > m->cap) bmap_grow(m);
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    for (;; i = (i + 1) & mask) {
        qtx_bmap_slot *s = &m->slots[i];
        if (!s->hash) break;
        if (s->hash == h && s->key_len == len && !memcmp(m->keys + s->key_off, key, len)) {
            if (inserted) *inserted = 0;
            return &s->value;
        }
    }
    if (m->keys_len + len > m->keys_cap) {
        while (m->keys_len + len > m->keys_cap) m->keys_cap *= 2;
        m->keys = qtx_realloc(m->keys, m->keys_cap);
    }
    memcpy(m->keys + m->keys_len, key, len);
    qtx_bmap_slot *s = &m->slots[i];
    s->hash = h;
    s->key_off = m->keys_len;
    s->key_len = (uint32_t)len;
    s->value = 0;
    m->keys_len += len;
    m->n++;
    if (inserted) *inserted = 1;
    return &s->value;
}

/* ---- qtx_u64map ------------------------------------------------------------------------ */

void qtx_u64map_init(qtx_u64map *m, size_t cap_hint) {
    m->cap = pow2_at_least(cap_hint * 2);
    m->n = 0;
    m->keys = qtx_malloc(m->cap * sizeof *m->keys);
    m->vals = qtx_calloc(m->cap, sizeof *m->vals);
    memset(m->keys, 0xff, m->cap * sizeof *m->keys);
}

void qtx_u64map_free(qtx_u64map *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

uint64_t *qtx_u64map_find(const qtx_u64map *m, uint64_t key) {
    size_t mask = m->cap - 1;
    for (size_t i = qtx_hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) return &m->vals[i];
        if (m->keys[i] == QTX_U64MAP_EMPTY) return NULL;
    }
}

static void u64map_grow(qtx_u64map *m) {
    uint64_t *ok = m->keys, *ov = m->vals;
    size_t old_cap = m->cap;
    m->cap *= 2;
    m->keys = qtx_malloc(m->cap * sizeof *m->keys);
    m->vals = qtx_calloc(m->cap, sizeof *m->vals);
    memset(m->keys, 0xff, m->cap * sizeof *m->keys);
    size_t mask = m->cap - 1;
    for (size_t j = 0; j < old_cap; j++) {
        if (ok[j] == QTX_U64MAP_EMPTY) continue;
        size_t i = qtx_hash_u64(ok[j]) & mask;
        while (m->keys[i] != QTX_U64MAP_EMPTY) i = (i + 1) & mask;
        m->keys[i] = ok[j];
        m->vals[i] = ov[j];
    }
    free(ok);
    free(ov);
}

uint64_t *qtx_u64map_put(qtx_u64map *m, uint64_t key, int *inserted) {
    QTX_CHECK(key != QTX_U64MAP_EMPTY, "reserved hash map key");
    if ((m->n + 1) * 2 > m->cap) u64map_grow(m);
    size_t mask = m->cap - 1;
    size_t i = qtx_hash_u64(key) & mask;
    for (; m->keys[i] != QTX_U64MAP_EMPTY; i = (i + 1) & mask)
        if (m->keys[i] == key) {
            if (inserted) *inserted = 0;
            return &m->vals[i];
        }
    m->keys[i] = key;
    m->vals[i] = 0;
    m->n++;
    if (inserted) *inserted = 1;
    return &m->vals[i];
}

/* ---- SHA-256 (FIPS 180-4) -------------------------------------------------------------- */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t ror32(uint32_t x, int n) {
    return (x >> n) | (x << (32 - n));
}

static void sha256_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) +
                      K256[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

void qtx_sha256_init(qtx_sha256 *s) {
    static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, H0, sizeof H0);
    s->len = 0;
    s->nbuf = 0;
}

void qtx_sha256_update(qtx_sha256 *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->len += n;
    if (s->nbuf) {
        size_t take = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += take;
        p += take;
        n -= take;
        if (s->nbuf < 64) return;
        sha256_block(s->h, s->buf);
        s->nbuf = 0;
    }
    for (; n >= 64; p += 64, n -= 64) sha256_block(s->h, p);
    memcpy(s->buf, p, n);
    s->nbuf = n;
}

void qtx_sha256_hex(qtx_sha256 *s, char out[65]) {
    uint64_t bits = s->len * 8;
    uint8_t pad[72] = {0x80};
    size_t padlen = (s->nbuf < 56 ? 56 : 120) - s->nbuf;
    for (int i = 0; i < 8; i++) pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
    qtx_sha256_update(s, pad, padlen + 8);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        uint8_t byte = (uint8_t)(s->h[i / 4] >> (24 - 8 * (i % 4)));
        out[2 * i] = hex[byte >> 4];
        out[2 * i + 1] = hex[byte & 15];
    }
    out[64] = 0;
}
