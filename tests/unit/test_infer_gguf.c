/* test_infer_gguf.c: the GGUF reader (infer/gguf.h) on files built byte by byte here: every
 * value type, string and numeric arrays, tensors of each supported type at the default and a
 * custom alignment; then each kind of bad input with its exact message (truncation at every
 * cut point, magic, version, tensor type, dimensions, offsets, counts, lengths, duplicates,
 * block sizes, overlap). */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "testutil.h"

#define CORRUPT "the file is corrupt: export or download it again"
#define INCOMPLETE "the file is incomplete: copy or export it again"

/* ---- a byte builder ------------------------------------------------------------------------ */

typedef struct bb {
    unsigned char *p;
    size_t n, cap;
} bb;

static void put(bb *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void u32(bb *b, uint32_t v) {
    put(b, &v, 4);
}
static void u64(bb *b, uint64_t v) {
    put(b, &v, 8);
}
static void str(bb *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void key(bb *b, const char *k, uint32_t type) {
    str(b, k);
    u32(b, type);
}
static void patch32(bb *b, size_t at, uint32_t v) {
    memcpy(b->p + at, &v, 4);
}
static void patch64(bb *b, size_t at, uint64_t v) {
    memcpy(b->p + at, &v, 8);
}

typedef struct tdef {
    const char *name;
    int n_dims;
    int64_t ne[4];
    uint32_t type;
} tdef;

/* Where things landed, for patches and expected messages. */
typedef struct layout {
    size_t kv_at[16];  /* each key's start */
    size_t val_at[16]; /* each value's start (after the type) */
    size_t tok3_at;    /* element 3 of tokenizer.ggml.tokens */
    size_t t_at[8], t_ndims_at[8], t_type_at[8], t_off_at[8];
    size_t infos_end, data_start;
    size_t t_data[8], t_bytes[8];
} layout;

static size_t type_bytes(uint32_t type, int64_t numel) {
    switch (type) {
    case 0:
        return (size_t)numel * 4;
    case 1:
        return (size_t)numel * 2;
    case 2:
        return (size_t)numel / 32 * 18;
    case 8:
        return (size_t)numel / 32 * 34;
    default:
        return (size_t)numel; /* unsupported types: any size will do */
    }
}

static const char *TOKENS[] = {"a", "b c", "", "\xc4\xa0x"};
static const int32_t TYPES[] = {1, 1, 3, 1};

/* A GGUF file: ten metadata keys of every kind (plus general.alignment when alignment != 0)
 * and the tensors t, their data (byte k of tensor i is (7 k + i) & 255) packed at the
 * alignment, no padding after the last. */
static void build(bb *b, const tdef *t, int nt, uint32_t alignment, layout *L) {
    memset(L, 0, sizeof *L);
    b->n = 0;
    put(b, "GGUF", 4);
    u32(b, 3);
    u64(b, (uint64_t)nt);
    u64(b, alignment ? 11 : 10);
    int k = 0;
#define KV(name, type)                                                                             \
    L->kv_at[k] = b->n;                                                                            \
    key(b, name, type);                                                                            \
    L->val_at[k++] = b->n
    KV("general.architecture", 8);
    str(b, "llama");
    KV("llama.block_count", 4);
    u32(b, 2);
    KV("llama.rope.freq_base", 6);
    const float f = 10000.5f;
    put(b, &f, 4);
    KV("test.i32", 5);
    u32(b, (uint32_t)-7);
    KV("test.bool", 7);
    put(b, "\1", 1);
    KV("test.u64", 10);
    u64(b, (uint64_t)1 << 40);
    KV("tokenizer.ggml.tokens", 9);
    u32(b, 8);
    u64(b, 4);
    for (int i = 0; i < 4; i++) {
        if (i == 3) L->tok3_at = b->n;
        str(b, TOKENS[i]);
    }
    KV("test.u8s", 9); /* 3 bytes: what follows is unaligned in the file */
    u32(b, 0);
    u64(b, 3);
    put(b, "\1\2\3", 3);
    KV("tokenizer.ggml.token_type", 9);
    u32(b, 5);
    u64(b, 4);
    put(b, TYPES, sizeof TYPES);
    KV("test.f64", 12);
    const double d = 2.5;
    put(b, &d, 8);
    if (alignment) {
        KV("general.alignment", 4);
        u32(b, alignment);
    }
#undef KV
    const size_t A = alignment ? alignment : 32;
    size_t off = 0;
    for (int i = 0; i < nt; i++) {
        int64_t numel = 1;
        for (int j = 0; j < t[i].n_dims && j < 4; j++) numel *= t[i].ne[j];
        L->t_bytes[i] = type_bytes(t[i].type, numel);
        L->t_at[i] = b->n;
        str(b, t[i].name);
        L->t_ndims_at[i] = b->n;
        u32(b, (uint32_t)t[i].n_dims);
        for (int j = 0; j < t[i].n_dims; j++) u64(b, (uint64_t)(j < 4 ? t[i].ne[j] : 1));
        L->t_type_at[i] = b->n;
        u32(b, t[i].type);
        L->t_off_at[i] = b->n;
        u64(b, off);
        L->t_data[i] = off;
        off = (off + L->t_bytes[i] + A - 1) / A * A;
    }
    L->infos_end = b->n;
    while (b->n % A) put(b, "", 1);
    L->data_start = b->n;
    for (int i = 0; i < nt; i++) {
        while (b->n < L->data_start + L->t_data[i]) put(b, "", 1);
        for (size_t j = 0; j < L->t_bytes[i]; j++) {
            unsigned char c = (unsigned char)((7 * j + (size_t)i) & 255);
            put(b, &c, 1);
        }
    }
}

static char g_path[64];

/* Writes n bytes of b to the test file and opens it; the code, and the message in msg. Every
 * file is also opened as a copy (QTX_GGUF_COPY), which must give the same verdict, message,
 * tensors and tensor bytes as the mapping. */
static int open_bytes(const bb *b, size_t n, qtx_gguf **g, char *msg, size_t cap) {
    FILE *f = fopen(g_path, "wb");
    if (!f) return -1;
    if (n) fwrite(b->p, 1, n, f);
    fclose(f);
    qtx_err e = {0}, e2 = {0};
    int rc = qtx_gguf_open(g, g_path, &e);
    snprintf(msg, cap, "%s", rc ? e.msg : "");
    qtx_gguf *c = NULL;
    const int rc2 = qtx_gguf_open_with(&c, g_path, QTX_GGUF_COPY, &e2);
    int same = rc2 == rc && (rc ? !strcmp(e.msg, e2.msg) : 1);
    if (!rc && !rc2) {
        same = same && qtx_gguf_n_tensors(c) == qtx_gguf_n_tensors(*g) &&
               qtx_gguf_n_kv(c) == qtx_gguf_n_kv(*g);
        for (int i = 0; same && i < qtx_gguf_n_tensors(c); i++) {
            const qtx_gguf_tensor *a = qtx_gguf_tensor_at(*g, i), *t = qtx_gguf_tensor_at(c, i);
            same = a->nbytes == t->nbytes && !strcmp(a->name, t->name) &&
                   !memcmp(a->data, t->data, a->nbytes) && a->data != t->data;
        }
    }
    T_CHECK(same, "%s: a copy (rc %d: %s) differs from the mapping (rc %d: %s)", g_path, rc2,
            rc2 ? e2.msg : "ok", rc, rc ? e.msg : "ok");
    qtx_gguf_close(c);
    return rc;
}

/* Opening the first n bytes of b fails with exactly "PATH: " + expected. */
static void expect_n(const bb *b, size_t n, const char *expected, int line) {
    qtx_gguf *g = NULL;
    char msg[1024], want[1024];
    int rc = open_bytes(b, n, &g, msg, sizeof msg);
    snprintf(want, sizeof want, "%s: %s", g_path, expected);
    qtx_test_checks++;
    if (rc != QTX_ERR_INPUT || g || strcmp(msg, want)) {
        qtx_test_failures++;
        fprintf(stderr, "FAIL line %d: rc %d\n  got:      %s\n  expected: %s\n", line, rc, msg,
                want);
    }
    qtx_gguf_close(g);
}
#define EXPECT(b, ...)                                                                             \
    do {                                                                                           \
        char exp_[1024];                                                                           \
        snprintf(exp_, sizeof exp_, __VA_ARGS__);                                                  \
        expect_n((b), (b)->n, exp_, __LINE__);                                                     \
    } while (0)
#define EXPECT_CUT(b, n, ...)                                                                      \
    do {                                                                                           \
        char exp_[1024];                                                                           \
        snprintf(exp_, sizeof exp_, __VA_ARGS__);                                                  \
        expect_n((b), (n), exp_, __LINE__);                                                        \
    } while (0)

static const tdef GOOD[] = {
    {"token_embd.weight", 2, {64, 3}, 8},   /* q8_0: 6 blocks, 204 bytes */
    {"blk.0.attn_q.weight", 2, {32, 2}, 2}, /* q4_0: 2 blocks, 36 bytes */
    {"output_norm.weight", 1, {5}, 0},      /* f32, 20 bytes */
    {"x.f16", 3, {3, 2, 2}, 1},             /* f16, 24 bytes */
};
#define N_GOOD 4

/* ---- a well-formed file -------------------------------------------------------------------- */

static void check_good(uint32_t alignment) {
    bb b = {0};
    layout L;
    build(&b, GOOD, N_GOOD, alignment, &L);
    qtx_gguf *g;
    char msg[1024];
    int rc = open_bytes(&b, b.n, &g, msg, sizeof msg);
    T_CHECK(rc == 0, "open failed: %s", msg);
    if (rc) {
        free(b.p);
        return;
    }
    const uint32_t A = alignment ? alignment : 32;
    T_CHECK(qtx_gguf_alignment(g) == A, "alignment %u", qtx_gguf_alignment(g));
    T_CHECK(qtx_gguf_file_size(g) == b.n, "size");
    T_CHECK(qtx_gguf_n_kv(g) == (alignment ? 11 : 10), "n_kv %d", qtx_gguf_n_kv(g));
    int type, et;
    T_STREQ(qtx_gguf_key_at(g, 0, &type, &et), "general.architecture");
    T_CHECK(type == QTX_GGUF_STR && et == -1, "key 0 type %d %d", type, et);
    T_STREQ(qtx_gguf_key_at(g, 6, &type, &et), "tokenizer.ggml.tokens");
    T_CHECK(type == QTX_GGUF_ARR && et == QTX_GGUF_STR, "key 6 type %d %d", type, et);
    T_CHECK(qtx_gguf_key_at(g, 99, &type, NULL) == NULL, "key 99");

    qtx_err e = {0};
    const char *s;
    size_t len;
    uint32_t u;
    int32_t i32;
    uint64_t u64v, n;
    float f;
    int bo;
    T_CHECK(!qtx_gguf_get_str(g, "general.architecture", &s, &len, &e) && len == 5 &&
                !strcmp(s, "llama"),
            "architecture");
    T_CHECK(!qtx_gguf_get_u32(g, "llama.block_count", &u, &e) && u == 2, "block_count");
    T_CHECK(!qtx_gguf_get_f32(g, "llama.rope.freq_base", &f, &e) && f == 10000.5f, "freq_base");
    T_CHECK(!qtx_gguf_get_i32(g, "test.i32", &i32, &e) && i32 == -7, "i32");
    T_CHECK(!qtx_gguf_get_bool(g, "test.bool", &bo, &e) && bo == 1, "bool");
    T_CHECK(!qtx_gguf_get_u64(g, "test.u64", &u64v, &e) && u64v == (uint64_t)1 << 40, "u64");
    T_CHECK(qtx_gguf_has(g, "test.f64") && !qtx_gguf_has(g, "test.nope"), "has");
    T_CHECK(!qtx_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &e) && et == QTX_GGUF_STR &&
                n == 4,
            "tokens array");
    for (uint64_t k = 0; k < 4; k++)
        T_CHECK(!qtx_gguf_arr_str(g, "tokenizer.ggml.tokens", k, &s, &len) &&
                    len == strlen(TOKENS[k]) && !strcmp(s, TOKENS[k]),
                "token %d", (int)k);
    T_CHECK(qtx_gguf_arr_str(g, "tokenizer.ggml.tokens", 4, &s, &len) == -1, "token 4");
    T_CHECK(qtx_gguf_arr_str(g, "tokenizer.ggml.token_type", 0, &s, &len) == -1, "not strings");
    T_CHECK(qtx_gguf_arr_data(g, "tokenizer.ggml.tokens") == NULL, "strings have no data");
    T_CHECK(!qtx_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n, &e) && et == QTX_GGUF_I32 &&
                n == 4,
            "token_type array");
    const int32_t *types = qtx_gguf_arr_data(g, "tokenizer.ggml.token_type");
    T_CHECK(types && (uintptr_t)types % 4 == 0 && !memcmp(types, TYPES, sizeof TYPES),
            "token types");
    const uint8_t *u8s = qtx_gguf_arr_data(g, "test.u8s");
    T_CHECK(u8s && u8s[0] == 1 && u8s[2] == 3, "u8 array");
    T_CHECK(qtx_gguf_arr_data(g, "llama.block_count") == NULL, "scalar has no array data");

    /* wrong type, missing key: file, key, expected and found type */
    char want[1024];
    T_CHECK(qtx_gguf_get_f32(g, "llama.block_count", &f, &e) == QTX_ERR_INPUT, "wrong type");
    snprintf(want, sizeof want,
             "%s: metadata key llama.block_count is uint32, expected float32 (offset %zu); "
             "re-export the model with qtx export",
             g_path, L.kv_at[1]);
    T_STREQ(e.msg, want);
    T_CHECK(qtx_gguf_get_u32(g, "tokenizer.ggml.tokens", &u, &e) == QTX_ERR_INPUT, "array");
    snprintf(want, sizeof want,
             "%s: metadata key tokenizer.ggml.tokens is an array of string, expected uint32 "
             "(offset %zu); re-export the model with qtx export",
             g_path, L.kv_at[6]);
    T_STREQ(e.msg, want);
    T_CHECK(qtx_gguf_get_arr(g, "llama.block_count", &et, &n, &e) == QTX_ERR_INPUT, "not arr");
    snprintf(want, sizeof want,
             "%s: metadata key llama.block_count is uint32, expected an array (offset %zu); "
             "re-export the model with qtx export",
             g_path, L.kv_at[1]);
    T_STREQ(e.msg, want);
    T_CHECK(qtx_gguf_get_u32(g, "llama.context_length", &u, &e) == QTX_ERR_INPUT, "missing");
    snprintf(want, sizeof want,
             "%s: metadata key llama.context_length is missing (expected uint32); the file was "
             "not exported for this use: re-export the model with qtx export",
             g_path);
    T_STREQ(e.msg, want);

    /* tensors */
    T_CHECK(qtx_gguf_n_tensors(g) == N_GOOD, "n_tensors %d", qtx_gguf_n_tensors(g));
    for (int i = 0; i < N_GOOD; i++) {
        const qtx_gguf_tensor *t = qtx_gguf_tensor_at(g, i);
        T_CHECK(t && qtx_gguf_find(g, GOOD[i].name) == t, "find %s", GOOD[i].name);
        if (!t) continue;
        T_STREQ(t->name, GOOD[i].name);
        T_CHECK(t->n_dims == GOOD[i].n_dims && (int)t->type == (int)GOOD[i].type, "%s dims/type",
                t->name);
        for (int d = 0; d < 4; d++)
            T_CHECK(t->ne[d] == (d < GOOD[i].n_dims ? GOOD[i].ne[d] : 1), "%s ne[%d]", t->name, d);
        T_CHECK(t->nbytes == L.t_bytes[i] && t->offset == L.t_data[i], "%s size %zu offset %llu",
                t->name, t->nbytes, (unsigned long long)t->offset);
        T_CHECK((uintptr_t)t->data % A == 0, "%s data aligned", t->name);
        int same = 1;
        for (size_t j = 0; j < t->nbytes; j++)
            same &=
                ((const unsigned char *)t->data)[j] == (unsigned char)((7 * j + (size_t)i) & 255);
        T_CHECK(same, "%s data", t->name);
    }
    T_CHECK(qtx_gguf_find(g, "nope") == NULL && qtx_gguf_tensor_at(g, N_GOOD) == NULL, "absent");
    qtx_gguf_close(g);

    /* every proper prefix of the file is refused with one line naming the file */
    int all = 1;
    for (size_t cut = 0; cut < b.n; cut++) {
        qtx_gguf *h = NULL;
        rc = open_bytes(&b, cut, &h, msg, sizeof msg);
        if (rc != QTX_ERR_INPUT || h || strncmp(msg, g_path, strlen(g_path)) || strchr(msg, '\n')) {
            fprintf(stderr, "cut %zu: rc %d: %s\n", cut, rc, msg);
            all = 0;
            qtx_gguf_close(h);
            break;
        }
    }
    T_CHECK(all, "every truncation refused (alignment %u)", A);
    free(b.p);
}

/* ---- bad input, one message each ----------------------------------------------------------- */

static void check_bad(void) {
    bb b = {0};
    layout L;
    build(&b, GOOD, N_GOOD, 0, &L);
    const size_t full = b.n;

    /* truncation at chosen points */
    EXPECT_CUT(&b, 0, "not a GGUF file (0 bytes, too short for the magic 'GGUF')");
    EXPECT_CUT(&b, 2, "not a GGUF file (2 bytes, too short for the magic 'GGUF')");
    EXPECT_CUT(
        &b, 20,
        "truncated: the header (offset 0) ends at byte 24 but the file has 20 bytes; " INCOMPLETE);
    EXPECT_CUT(&b, 100,
               "4 tensors and 10 metadata keys (offset 8) need at least 296 bytes, more than the "
               "file has (100); the file is corrupt or incomplete: export or copy it again");
    EXPECT_CUT(&b, L.kv_at[9] + 4,
               "truncated: the key of metadata entry 9 (offset %zu) ends at byte %zu but the file "
               "has %zu bytes; " INCOMPLETE,
               L.kv_at[9], L.kv_at[9] + 8, L.kv_at[9] + 4);
    EXPECT_CUT(&b, L.kv_at[9] + 10,
               "truncated: the key of metadata entry 9 (offset %zu) ends at byte %zu but the file "
               "has %zu bytes; " INCOMPLETE,
               L.kv_at[9], L.kv_at[9] + 16, L.kv_at[9] + 10);
    EXPECT_CUT(&b, L.val_at[9] + 3,
               "truncated: the value of key test.f64 (offset %zu) ends at byte %zu but the file "
               "has %zu bytes; " INCOMPLETE,
               L.kv_at[9], L.val_at[9] + 8, L.val_at[9] + 3);
    /* cuts inside the tokens array, with one tensor so the counts fit in the prefix (the
     * metadata lands at the same offsets) */
    bb one = {0};
    layout L1;
    build(&one, GOOD, 1, 0, &L1);
    EXPECT_CUT(&one, L.tok3_at + 9,
               "truncated: element 3 of key tokenizer.ggml.tokens (offset %zu) ends at byte %zu "
               "but the file has %zu bytes; " INCOMPLETE,
               L.tok3_at, L.tok3_at + 8 + 3, L.tok3_at + 9);
    EXPECT_CUT(&one, L.tok3_at - 20,
               "truncated: the 4 elements of key tokenizer.ggml.tokens (offset %zu) need at least "
               "32 bytes but only 8 are left in the file (%zu bytes); " INCOMPLETE,
               L.val_at[6] - 4, L.tok3_at - 20);
    free(one.p);
    EXPECT_CUT(&b, L.val_at[8] + 12 + 5,
               "truncated: the 4 elements of key tokenizer.ggml.token_type (offset %zu) need at "
               "least 16 bytes but only 5 are left in the file (%zu bytes); " INCOMPLETE,
               L.val_at[8] - 4, L.val_at[8] + 12 + 5);
    EXPECT_CUT(&b, L.t_ndims_at[1] + 4 + 3,
               "truncated: the info of tensor blk.0.attn_q.weight (offset %zu) ends at byte %zu "
               "but the file has %zu bytes; " INCOMPLETE,
               L.t_at[1], L.t_ndims_at[1] + 4 + 2 * 8 + 12, L.t_ndims_at[1] + 7);
    EXPECT_CUT(
        &b, full - 1,
        "truncated: tensor x.f16 data ends at byte %zu but the file has %zu bytes; " INCOMPLETE,
        full, full - 1);
    EXPECT_CUT(&b, L.data_start + L.t_data[1] + 5,
               "truncated: tensor blk.0.attn_q.weight data ends at byte %zu but the file has %zu "
               "bytes; " INCOMPLETE,
               L.data_start + L.t_data[1] + 36, L.data_start + L.t_data[1] + 5);
    EXPECT_CUT(&b, L.data_start,
               "tensor token_embd.weight has data offset 0, past the end of the file (data starts "
               "at byte %zu, the file has %zu bytes) (offset %zu); the file is corrupt or "
               "incomplete: export or copy it again",
               L.data_start, L.data_start, L.t_at[0]);

    /* magic and version */
    memcpy(b.p, "PK\x03\x04", 4);
    EXPECT(&b, "not a GGUF file (magic 'PK\\x03\\x04', expected 'GGUF')");
    memcpy(b.p, "GGUF", 4);
    patch32(&b, 4, 2);
    EXPECT(&b, "GGUF version 2 is an old format qtx does not read (offset 4); convert it to "
               "version 3 with a current llama.cpp, or re-export with qtx export");
    patch32(&b, 4, 4);
    EXPECT(&b, "GGUF version 4 is not supported (offset 4); qtx reads version 3");
    patch32(&b, 4, 0x03000000u);
    EXPECT(&b, "big-endian GGUF file (offset 4); qtx reads little-endian GGUF only");
    patch32(&b, 4, 3);

    /* absurd counts and lengths */
    patch64(&b, 16, (uint64_t)1 << 40);
    EXPECT(&b, "metadata count 1099511627776 (offset 16) is absurd (more than 1048576); " CORRUPT);
    patch64(&b, 16, 10);
    patch64(&b, 8, UINT64_MAX);
    EXPECT(&b,
           "tensor count 18446744073709551615 (offset 8) is absurd (more than 1048576); " CORRUPT);
    patch64(&b, 8, 5000);
    EXPECT(&b,
           "5000 tensors and 10 metadata keys (offset 8) need at least 165164 bytes, more than the "
           "file has (%zu); the file is corrupt or incomplete: export or copy it again",
           full);
    patch64(&b, 8, N_GOOD);
    patch64(&b, L.kv_at[1], (uint64_t)1 << 40);
    EXPECT(&b,
           "the key of metadata entry 1 (offset %zu) is 1099511627776 bytes long; the limit is "
           "65535; " CORRUPT,
           L.kv_at[1]);
    patch64(&b, L.kv_at[1], strlen("llama.block_count"));
    patch64(&b, L.val_at[0], (uint64_t)1 << 62);
    EXPECT(&b,
           "the value of key general.architecture (offset %zu) claims 4611686018427387904 bytes, "
           "more than the whole file (%zu bytes); " CORRUPT,
           L.val_at[0], full);
    patch64(&b, L.val_at[0], 5);
    patch64(&b, L.val_at[6] + 4, (uint64_t)1 << 61);
    EXPECT(&b,
           "key tokenizer.ggml.tokens claims 2305843009213693952 elements of string (offset %zu), "
           "more than the whole file (%zu bytes) holds; " CORRUPT,
           L.val_at[6] - 4, full);
    patch64(&b, L.val_at[6] + 4, 4);
    patch32(&b, L.val_at[6], 9);
    EXPECT(&b,
           "key tokenizer.ggml.tokens is an array of arrays (offset %zu), which qtx does not read "
           "(nor does llama.cpp); re-export the model with qtx export",
           L.val_at[6] - 4);
    patch32(&b, L.val_at[6], 8);
    patch32(&b, L.val_at[1] - 4, 13);
    EXPECT(&b, "key llama.block_count has unknown value type 13 (offset %zu); " CORRUPT,
           L.val_at[1] - 4);
    patch32(&b, L.val_at[1] - 4, 4);

    /* tensor infos */
    patch32(&b, L.t_type_at[1], 12);
    EXPECT(&b, "tensor blk.0.attn_q.weight has type 12 (q4_K), which qtx does not support; "
               "supported: f32, f16, q4_0, q8_0 (re-export with qtx export --quant q8_0)");
    patch32(&b, L.t_type_at[1], 30);
    EXPECT(&b, "tensor blk.0.attn_q.weight has type 30 (bf16), which qtx does not support; "
               "supported: f32, f16, q4_0, q8_0 (re-export with qtx export --quant q8_0)");
    patch32(&b, L.t_type_at[1], 99);
    EXPECT(&b,
           "tensor blk.0.attn_q.weight has unknown type 99 (offset %zu); the file is corrupt or "
           "from a newer ggml: qtx reads f32, f16, q4_0, q8_0",
           L.t_at[1]);
    patch32(&b, L.t_type_at[1], 2);
    patch32(&b, L.t_ndims_at[2], 5);
    EXPECT(&b,
           "tensor output_norm.weight has 5 dimensions (offset %zu); GGUF tensors have 1 to "
           "4; " CORRUPT,
           L.t_at[2]);
    patch32(&b, L.t_ndims_at[2], 0);
    EXPECT(&b,
           "tensor output_norm.weight has 0 dimensions (offset %zu); GGUF tensors have 1 to "
           "4; " CORRUPT,
           L.t_at[2]);
    patch32(&b, L.t_ndims_at[2], 1);
    patch64(&b, L.t_ndims_at[2] + 4, 0);
    EXPECT(&b,
           "tensor output_norm.weight has ne[0] = 0 (offset %zu); dimensions must be 1 to 2^63 - "
           "1; " CORRUPT,
           L.t_at[2]);
    patch64(&b, L.t_ndims_at[2] + 4, 5);
    patch64(&b, L.t_ndims_at[0] + 12, (uint64_t)1 << 62);
    EXPECT(&b,
           "tensor token_embd.weight has 64 x 4611686018427387904 x 1 x 1 elements, too many to "
           "address (offset %zu); " CORRUPT,
           L.t_at[0]);
    patch64(&b, L.t_ndims_at[0] + 12, (uint64_t)1 << 50);
    EXPECT(&b,
           "tensor token_embd.weight of 64 x 1125899906842624 x 1 x 1 q8_0 values needs more "
           "bytes than the whole file has (%zu) (offset %zu); " CORRUPT,
           full, L.t_at[0]);
    patch64(&b, L.t_ndims_at[0] + 12, 3);
    /* data offsets */
    patch64(&b, L.t_off_at[1], L.t_data[1] + 16);
    EXPECT(&b,
           "tensor blk.0.attn_q.weight has data offset %zu, not a multiple of the file's "
           "alignment 32 (offset %zu); " CORRUPT,
           L.t_data[1] + 16, L.t_at[1]);
    patch64(&b, L.t_off_at[1], (uint64_t)1 << 20);
    EXPECT(&b,
           "tensor blk.0.attn_q.weight has data offset 1048576, past the end of the file (data "
           "starts at byte %zu, the file has %zu bytes) (offset %zu); the file is corrupt or "
           "incomplete: export or copy it again",
           L.data_start, full, L.t_at[1]);
    patch64(&b, L.t_off_at[1], L.t_data[0] + 192);
    EXPECT(&b, "tensors token_embd.weight (data bytes 0..204) and blk.0.attn_q.weight (from 192) "
               "overlap; " CORRUPT);
    patch64(&b, L.t_off_at[1], L.t_data[1]);
    qtx_gguf *g;
    char msg[1024];
    T_CHECK(open_bytes(&b, b.n, &g, msg, sizeof msg) == 0, "patches undone: %s", msg);
    qtx_gguf_close(g);

    /* duplicates, block sizes, alignment */
    const tdef dup[] = {{"a", 1, {4}, 0}, {"b", 1, {4}, 0}, {"a", 1, {4}, 0}};
    build(&b, dup, 3, 0, &L);
    EXPECT(&b, "tensor a appears twice (tensor infos at offsets %zu and %zu); " CORRUPT, L.t_at[0],
           L.t_at[2]);
    build(&b, GOOD, N_GOOD, 0, &L);
    memcpy(b.p + L.kv_at[3] + 8, "test.u64", 8); /* "test.i32" -> "test.u64": a second one */
    EXPECT(&b, "key test.u64 appears twice (offsets %zu and %zu); " CORRUPT, L.kv_at[3],
           L.kv_at[5]);
    const tdef q8[] = {{"blk.0.ffn_down.weight", 2, {48, 2}, 8}};
    build(&b, q8, 1, 0, &L);
    EXPECT(&b,
           "tensor blk.0.ffn_down.weight has ne[0] = 48, not a multiple of q8_0's block size 32 "
           "(offset %zu); " CORRUPT,
           L.t_at[0]);
    build(&b, GOOD, N_GOOD, 48, &L);
    EXPECT(&b, "general.alignment is 48, not a power of two (offset %zu); " CORRUPT, L.kv_at[10]);
    build(&b, GOOD, N_GOOD, 64, &L);
    patch32(&b, L.val_at[10] - 4, 5);
    EXPECT(&b, "general.alignment is int32, expected uint32 (offset %zu); " CORRUPT, L.kv_at[10]);
    /* names: a NUL inside, too long */
    const tdef nul[] = {{"a", 1, {4}, 0}};
    build(&b, nul, 1, 0, &L);
    b.p[L.t_at[0] + 8] = 0;
    EXPECT(&b, "the name of tensor info 0 (offset %zu) is not text (it holds a NUL byte); " CORRUPT,
           L.t_at[0]);
    const tdef longname[] = {
        {"0123456789012345678901234567890123456789012345678901234567890123", 1, {4}, 0}};
    build(&b, longname, 1, 0, &L);
    EXPECT(&b, "the name of tensor info 0 (offset %zu) is 64 bytes long; the limit is 63; " CORRUPT,
           L.t_at[0]);

    /* not a file */
    qtx_err e = {0};
    T_CHECK(qtx_gguf_open(&g, "/nonexistent/model.gguf", &e) == QTX_ERR_INPUT && !g, "missing");
    T_STREQ(e.msg,
            "/nonexistent/model.gguf: cannot open: No such file or directory; check the path");
    T_CHECK(qtx_gguf_open(&g, "/tmp", &e) == QTX_ERR_INPUT && !g, "directory");
    T_STREQ(e.msg, "/tmp: not a regular file; pass a .gguf model file");
    free(b.p);
}

/* Empty arrays and no tensors: still a valid file; an empty numeric array has data (not NULL). */
static void check_empty(void) {
    bb b = {0};
    put(&b, "GGUF", 4);
    u32(&b, 3);
    u64(&b, 0);
    u64(&b, 2);
    key(&b, "e.i32", 9);
    u32(&b, 5);
    u64(&b, 0);
    key(&b, "e.str", 9);
    u32(&b, 8);
    u64(&b, 0);
    qtx_gguf *g;
    char msg[1024];
    T_CHECK(open_bytes(&b, b.n, &g, msg, sizeof msg) == 0, "empty arrays: %s", msg);
    if (g) {
        int et;
        uint64_t n = 9;
        qtx_err e = {0};
        T_CHECK(!qtx_gguf_get_arr(g, "e.i32", &et, &n, &e) && et == QTX_GGUF_I32 && n == 0,
                "empty i32 array");
        T_CHECK(qtx_gguf_arr_data(g, "e.i32") != NULL, "empty array data is not NULL");
        T_CHECK(!qtx_gguf_get_arr(g, "e.str", &et, &n, &e) && et == QTX_GGUF_STR && n == 0,
                "empty string array");
        T_CHECK(qtx_gguf_n_tensors(g) == 0 && qtx_gguf_find(g, "x") == NULL, "no tensors");
        qtx_gguf_close(g);
    }
    free(b.p);
}

static void check_names(void) {
    T_STREQ(qtx_ggml_type_name(8), "q8_0");
    T_STREQ(qtx_ggml_type_name(14), "q6_K");
    T_CHECK(qtx_ggml_type_name(1000) == NULL, "unknown ggml type");
    T_STREQ(qtx_gguf_type_name(QTX_GGUF_F64), "float64");
    T_STREQ(qtx_gguf_type_name(13), "unknown");
}

int main(void) {
    snprintf(g_path, sizeof g_path, "/tmp/qtx-test-gguf-%ld.gguf", (long)getpid());
    check_good(0);
    check_good(64);
    check_good(1);
    check_bad();
    check_empty();
    check_names();
    unlink(g_path);
    return qtx_test_done("test_infer_gguf");
}
