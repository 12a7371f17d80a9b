/* gguf_read.c: the GGUF v3 reader (gguf.h): maps the file, parses the header, metadata and
 * tensor infos with a bounds-checked cursor, then checks the tensors' data (alignment, inside
 * the file, no overlaps) and uniqueness of keys and names, all before returning.
 *
 * Nothing is trusted: each length is compared with the bytes left before it is used, counts
 * are capped (and checked against the bytes they need at least) before anything is allocated,
 * and every size computation is checked for overflow. Strings are copied into one arena with
 * a NUL each; numeric arrays are copied (naturally aligned) into another, so callers never
 * read unaligned or unterminated data out of the mapping.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader decodes little-endian integers with memcpy"
#endif

#define FIX_CORRUPT "the file is corrupt: export or download it again"
#define FIX_TRUNC "the file is incomplete: copy or export it again"
#define FIX_REEXPORT "re-export the model with qtx export"

/* ---- names ------------------------------------------------------------------------------- */

static const char *const GGUF_TYPE_NAMES[] = {
    "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
    "bool",  "string", "array",  "uint64", "int64",  "float64",
};
#define N_GGUF_TYPES (int)(sizeof GGUF_TYPE_NAMES / sizeof GGUF_TYPE_NAMES[0])

const char *qtx_gguf_type_name(int type) {
    return type >= 0 && type < N_GGUF_TYPES ? GGUF_TYPE_NAMES[type] : "unknown";
}

/* Bytes of one scalar value; 0 for string and array. */
static uint64_t scalar_size(int type) {
    switch (type) {
    case QTX_GGUF_U8:
    case QTX_GGUF_I8:
    case QTX_GGUF_BOOL:
        return 1;
    case QTX_GGUF_U16:
    case QTX_GGUF_I16:
        return 2;
    case QTX_GGUF_U32:
    case QTX_GGUF_I32:
    case QTX_GGUF_F32:
        return 4;
    case QTX_GGUF_U64:
    case QTX_GGUF_I64:
    case QTX_GGUF_F64:
        return 8;
    default:
        return 0;
    }
}

/* ggml's tensor types by id (ggml.h's enum ggml_type; ids 4 and 5 and 31 to 33 and 36 to 38
 * were removed from ggml but keep their names here so old files are named right). */
typedef struct ggml_type_info {
    const char *name;
    int64_t block_size; /* values per block; 0: qtx does not read this type */
    uint64_t block_bytes;
} ggml_type_info;

static const ggml_type_info GGML_TYPES[] = {
    [0] = {"f32", 1, 4},         [1] = {"f16", 1, 2},         [2] = {"q4_0", 32, 18},
    [3] = {"q4_1", 0, 0},        [4] = {"q4_2", 0, 0},        [5] = {"q4_3", 0, 0},
    [6] = {"q5_0", 0, 0},        [7] = {"q5_1", 0, 0},        [8] = {"q8_0", 32, 34},
    [9] = {"q8_1", 0, 0},        [10] = {"q2_K", 0, 0},       [11] = {"q3_K", 0, 0},
    [12] = {"q4_K", 0, 0},       [13] = {"q5_K", 0, 0},       [14] = {"q6_K", 0, 0},
    [15] = {"q8_K", 0, 0},       [16] = {"iq2_xxs", 0, 0},    [17] = {"iq2_xs", 0, 0},
    [18] = {"iq3_xxs", 0, 0},    [19] = {"iq1_s", 0, 0},      [20] = {"iq4_nl", 0, 0},
    [21] = {"iq3_s", 0, 0},      [22] = {"iq2_s", 0, 0},      [23] = {"iq4_xs", 0, 0},
    [24] = {"i8", 0, 0},         [25] = {"i16", 0, 0},        [26] = {"i32", 0, 0},
    [27] = {"i64", 0, 0},        [28] = {"f64", 0, 0},        [29] = {"iq1_m", 0, 0},
    [30] = {"bf16", 0, 0},       [31] = {"q4_0_4_4", 0, 0},   [32] = {"q4_0_4_8", 0, 0},
    [33] = {"q4_0_8_8", 0, 0},   [34] = {"tq1_0", 0, 0},      [35] = {"tq2_0", 0, 0},
    [36] = {"iq4_nl_4_4", 0, 0}, [37] = {"iq4_nl_4_8", 0, 0}, [38] = {"iq4_nl_8_8", 0, 0},
    [39] = {"mxfp4", 0, 0},
};
#define N_GGML_TYPES (uint32_t)(sizeof GGML_TYPES / sizeof GGML_TYPES[0])

const char *qtx_ggml_type_name(uint32_t t) {
    return t < N_GGML_TYPES ? GGML_TYPES[t].name : NULL;
}

/* ---- the reader's state ------------------------------------------------------------------- */

typedef struct str_ref {
    size_t off, len; /* in the arena; off + len is the NUL */
} str_ref;

typedef struct kv_entry {
    size_t key;    /* index into strs */
    int type;      /* qtx_gguf_type */
    int elem_type; /* arrays */
    uint64_t n;    /* arrays: element count */
    uint64_t at;   /* file offset of the key, for messages */
    uint64_t raw;  /* scalars other than string: the value's bytes, zero-extended */
    size_t str;    /* string: index into strs; string array: index of element 0 */
    size_t num;    /* numeric arrays: byte offset into nums */
} kv_entry;

struct qtx_gguf {
    char *path;
    int fd;
    const uint8_t *map;
    uint64_t size;
    qtx_gguf_load how; /* map is a mapping, or a copy from qtx_alloc_big */
    uint32_t alignment;
    uint64_t data_start;

    char *arena; /* NUL-terminated strings */
    size_t arena_n, arena_cap;
    str_ref *strs;
    size_t n_strs, strs_cap;
    uint64_t *nums;          /* numeric arrays, 8-byte aligned */
    size_t nums_n, nums_cap; /* in bytes */

    kv_entry *kvs;
    int n_kv;
    int *kv_sorted; /* kv indices sorted by key */

    qtx_gguf_tensor *tensors;
    uint64_t *tensor_at; /* file offset of each tensor info */
    int n_tensors;
    int *t_sorted; /* tensor indices sorted by name */
};

static const char *str_at(const qtx_gguf *g, size_t i) {
    return g->arena + g->strs[i].off;
}

/* ---- errors ------------------------------------------------------------------------------- */

/* A name from the file, made printable for a one-line message: bytes outside 0x20..0x7e as
 * \xNN, at most ~80 characters. */
static const char *printable(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 80) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\'')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

typedef struct cursor {
    qtx_gguf *g;
    uint64_t pos;
    qtx_err *e;
} cursor;

static int bad(const cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(const cursor *c, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    return qtx_fail(c->e, QTX_ERR_INPUT, "%s: %s", c->g->path, msg);
}

/* n more bytes must be there at c->pos; what (a phrase) started at byte `start`. */
static int need(cursor *c, uint64_t n, uint64_t start, const char *what) {
    if (n <= c->g->size - c->pos) return 0;
    if (n > c->g->size)
        return bad(c,
                   "%s (offset %" PRIu64 ") claims %" PRIu64
                   " bytes, more than the whole file (%" PRIu64 " bytes); " FIX_CORRUPT,
                   what, start, n, c->g->size);
    return bad(c,
               "truncated: %s (offset %" PRIu64 ") ends at byte %" PRIu64
               " but the file has %" PRIu64 " bytes; " FIX_TRUNC,
               what, start, c->pos + n, c->g->size);
}

static uint64_t rd_u64(cursor *c) {
    uint64_t v;
    memcpy(&v, c->g->map + c->pos, 8);
    c->pos += 8;
    return v;
}

static uint32_t rd_u32(cursor *c) {
    uint32_t v;
    memcpy(&v, c->g->map + c->pos, 4);
    c->pos += 4;
    return v;
}

/* ---- growable storage --------------------------------------------------------------------- */

static size_t grow_cap(size_t cap, size_t need_n) {
    size_t c = cap ? cap : 64;
    while (c < need_n) c *= 2;
    return c;
}

/* Copies n bytes from the file at pos into the arena as a new string; returns its index. */
static size_t add_str(qtx_gguf *g, uint64_t pos, size_t n) {
    if (g->arena_n + n + 1 > g->arena_cap) {
        g->arena_cap = grow_cap(g->arena_cap, g->arena_n + n + 1);
        g->arena = qtx_realloc(g->arena, g->arena_cap);
    }
    if (g->n_strs == g->strs_cap) {
        g->strs_cap = grow_cap(g->strs_cap, g->n_strs + 1);
        g->strs = qtx_realloc(g->strs, g->strs_cap * sizeof *g->strs);
    }
    if (n) memcpy(g->arena + g->arena_n, g->map + pos, n);
    g->arena[g->arena_n + n] = '\0';
    g->strs[g->n_strs] = (str_ref){g->arena_n, n};
    g->arena_n += n + 1;
    return g->n_strs++;
}

/* Copies n bytes from the file at pos into the numeric arena (8-byte aligned); returns the
 * byte offset. */
static size_t add_nums(qtx_gguf *g, uint64_t pos, size_t n) {
    size_t at = g->nums_n, end = at + (n + 7) / 8 * 8;
    if (end > g->nums_cap || !g->nums) { /* allocated even for an empty array: never NULL */
        g->nums_cap = grow_cap(g->nums_cap, end);
        g->nums = qtx_realloc(g->nums, g->nums_cap);
    }
    if (n) memcpy((char *)g->nums + at, g->map + pos, n);
    g->nums_n = end;
    return at;
}

/* ---- parsing ------------------------------------------------------------------------------ */

/* A string at the cursor: u64 length, bytes. what names it for messages (NULL: "element
 * `elem` of key `arr_key`", formatted only on failure: vocabularies have 10^5 of them).
 * max_len bounds keys and names (0: only the file bounds it); is_name forbids empty strings
 * and NUL bytes. */
static int read_str(cursor *c, const char *what, const char *arr_key, uint64_t elem,
                    uint64_t max_len, int is_name, size_t *idx) {
    char buf[480];
    const uint64_t start = c->pos;
    const uint64_t left = c->g->size - c->pos;
    uint64_t len = 0;
    if (left >= 8) memcpy(&len, c->g->map + c->pos, 8);
    const int fails = left < 8 || (max_len && len > max_len) || len > left - 8 ||
                      (is_name && (len == 0 || memchr(c->g->map + c->pos + 8, 0, len)));
    if (fails) {
        if (!what) {
            snprintf(buf, sizeof buf, "element %" PRIu64 " of key %s", elem, arr_key);
            what = buf;
        }
        if (need(c, 8, start, what)) return QTX_ERR_INPUT;
        c->pos += 8;
        if (max_len && len > max_len)
            return bad(c,
                       "%s (offset %" PRIu64 ") is %" PRIu64 " bytes long; the limit is %" PRIu64
                       "; " FIX_CORRUPT,
                       what, start, len, max_len);
        if (need(c, len, start, what)) return QTX_ERR_INPUT;
        return bad(c, "%s (offset %" PRIu64 ") is %s; " FIX_CORRUPT, what, start,
                   len ? "not text (it holds a NUL byte)" : "empty");
    }
    *idx = add_str(c->g, c->pos + 8, (size_t)len);
    c->pos += 8 + len;
    return 0;
}

static int parse_kv(cursor *c, uint64_t k) {
    qtx_gguf *g = c->g;
    char what[200], nm[400];
    kv_entry *kv = &g->kvs[g->n_kv];
    memset(kv, 0, sizeof *kv);
    kv->at = c->pos;
    snprintf(what, sizeof what, "the key of metadata entry %" PRIu64, k);
    if (read_str(c, what, NULL, 0, QTX_GGUF_KEY_MAX, 1, &kv->key)) return QTX_ERR_INPUT;
    const char *key = printable(str_at(g, kv->key), g->strs[kv->key].len, nm, sizeof nm);
    snprintf(what, sizeof what, "the value of key %s", key);
    if (need(c, 4, kv->at, what)) return QTX_ERR_INPUT;
    const uint64_t type_at = c->pos;
    kv->type = (int)rd_u32(c);
    if ((uint32_t)kv->type >= (uint32_t)N_GGUF_TYPES)
        return bad(c, "key %s has unknown value type %u (offset %" PRIu64 "); " FIX_CORRUPT, key,
                   (unsigned)kv->type, type_at);
    if (kv->type == QTX_GGUF_STR) {
        if (read_str(c, what, NULL, 0, 0, 0, &kv->str)) return QTX_ERR_INPUT;
    } else if (kv->type != QTX_GGUF_ARR) {
        if (need(c, scalar_size(kv->type), kv->at, what)) return QTX_ERR_INPUT;
        memcpy(&kv->raw, g->map + c->pos, scalar_size(kv->type));
        c->pos += scalar_size(kv->type);
    } else {
        if (need(c, 12, kv->at, what)) return QTX_ERR_INPUT;
        kv->elem_type = (int)rd_u32(c);
        kv->n = rd_u64(c);
        if ((uint32_t)kv->elem_type >= (uint32_t)N_GGUF_TYPES)
            return bad(c,
                       "key %s is an array of unknown type %u (offset %" PRIu64 "); " FIX_CORRUPT,
                       key, (unsigned)kv->elem_type, type_at);
        if (kv->elem_type == QTX_GGUF_ARR)
            return bad(c,
                       "key %s is an array of arrays (offset %" PRIu64
                       "), which qtx does not read (nor does llama.cpp); " FIX_REEXPORT,
                       key, type_at);
        /* each element takes at least this many bytes: cap the count by what is left */
        const uint64_t esz = kv->elem_type == QTX_GGUF_STR ? 8 : scalar_size(kv->elem_type);
        if (kv->n > (g->size - c->pos) / esz) {
            if (kv->n > g->size / esz)
                return bad(c,
                           "key %s claims %" PRIu64 " elements of %s (offset %" PRIu64
                           "), more than the whole file (%" PRIu64 " bytes) holds; " FIX_CORRUPT,
                           key, kv->n, qtx_gguf_type_name(kv->elem_type), type_at, g->size);
            return bad(c,
                       "truncated: the %" PRIu64 " elements of key %s (offset %" PRIu64
                       ") need at least %" PRIu64 " bytes but only %" PRIu64
                       " are left in the file (%" PRIu64 " bytes); " FIX_TRUNC,
                       kv->n, key, type_at, kv->n * esz, g->size - c->pos, g->size);
        }
        if (kv->elem_type == QTX_GGUF_STR) {
            kv->str = g->n_strs;
            for (uint64_t i = 0; i < kv->n; i++) {
                size_t idx;
                if (read_str(c, NULL, key, i, 0, 0, &idx)) return QTX_ERR_INPUT;
            }
        } else {
            kv->num = add_nums(g, c->pos, (size_t)(kv->n * esz));
            c->pos += kv->n * esz;
        }
    }
    g->n_kv++;
    return 0;
}

static int parse_tensor_info(cursor *c, uint64_t k) {
    qtx_gguf *g = c->g;
    char what[200], nm[400];
    const int i = g->n_tensors;
    qtx_gguf_tensor *t = &g->tensors[i];
    memset(t, 0, sizeof *t);
    const uint64_t at = g->tensor_at[i] = c->pos;
    size_t name = 0;
    snprintf(what, sizeof what, "the name of tensor info %" PRIu64, k);
    if (read_str(c, what, NULL, 0, QTX_GGUF_NAME_MAX, 1, &name)) return QTX_ERR_INPUT;
    t->name = (const char *)(uintptr_t)name; /* an index until parsing ends */
    const char *tn = printable(str_at(g, name), g->strs[name].len, nm, sizeof nm);
    snprintf(what, sizeof what, "the info of tensor %s", tn);
    if (need(c, 4, at, what)) return QTX_ERR_INPUT;
    const uint32_t n_dims = rd_u32(c);
    if (n_dims < 1 || n_dims > QTX_GGUF_MAX_DIMS)
        return bad(c,
                   "tensor %s has %u dimensions (offset %" PRIu64
                   "); GGUF tensors have 1 to %d; " FIX_CORRUPT,
                   tn, n_dims, at, QTX_GGUF_MAX_DIMS);
    if (need(c, 8 * (uint64_t)n_dims + 12, at, what)) return QTX_ERR_INPUT;
    t->n_dims = (int)n_dims;
    uint64_t ne[4] = {1, 1, 1, 1};
    for (uint32_t d = 0; d < n_dims; d++) ne[d] = rd_u64(c);
    const uint32_t type = rd_u32(c);
    t->offset = rd_u64(c);
    for (uint32_t d = 0; d < n_dims; d++)
        if (ne[d] < 1 || ne[d] > (uint64_t)INT64_MAX)
            return bad(c,
                       "tensor %s has ne[%u] = %" PRIu64 " (offset %" PRIu64
                       "); dimensions must be 1 to 2^63 - 1; " FIX_CORRUPT,
                       tn, d, ne[d], at);
    const char *tyname = qtx_ggml_type_name(type);
    if (!tyname)
        return bad(c,
                   "tensor %s has unknown type %u (offset %" PRIu64
                   "); the file is corrupt or from a newer ggml: qtx reads f32, f16, q4_0, q8_0",
                   tn, type, at);
    const ggml_type_info *ti = &GGML_TYPES[type];
    if (!ti->block_size)
        return bad(c,
                   "tensor %s has type %u (%s), which qtx does not support; supported: f32, f16, "
                   "q4_0, q8_0 (re-export with qtx export --quant q8_0)",
                   tn, type, tyname);
    t->type = (qtx_qtype)type;
    if ((int64_t)ne[0] % ti->block_size)
        return bad(c,
                   "tensor %s has ne[0] = %" PRIu64 ", not a multiple of %s's block size %" PRId64
                   " (offset %" PRIu64 "); " FIX_CORRUPT,
                   tn, ne[0], tyname, ti->block_size, at);
    /* element count, then bytes, without overflow */
    uint64_t numel = 1;
    for (int d = 0; d < 4; d++) {
        if (ne[d] > (uint64_t)INT64_MAX / numel)
            return bad(c,
                       "tensor %s has %" PRIu64 " x %" PRIu64 " x %" PRIu64 " x %" PRIu64
                       " elements, too many to address (offset %" PRIu64 "); " FIX_CORRUPT,
                       tn, ne[0], ne[1], ne[2], ne[3], at);
        numel *= ne[d];
        t->ne[d] = (int64_t)ne[d];
    }
    const uint64_t blocks = numel / (uint64_t)ti->block_size;
    if (blocks > g->size / ti->block_bytes)
        return bad(c,
                   "tensor %s of %" PRIu64 " x %" PRIu64 " x %" PRIu64 " x %" PRIu64
                   " %s values needs more bytes than the whole file has (%" PRIu64
                   ") (offset %" PRIu64 "); " FIX_CORRUPT,
                   tn, ne[0], ne[1], ne[2], ne[3], tyname, g->size, at);
    t->nbytes = (size_t)(blocks * ti->block_bytes);
    g->n_tensors++;
    return 0;
}

/* ---- uniqueness and lookups --------------------------------------------------------------- */

/* Comparators for glibc's qsort_r (the context is the reader); ties go by index, so a
 * duplicate is reported at its second occurrence in the file. */
static int cmp_kv(const void *a, const void *b, void *ctx) {
    const qtx_gguf *g = ctx;
    const int i = *(const int *)a, j = *(const int *)b;
    int r = strcmp(str_at(g, g->kvs[i].key), str_at(g, g->kvs[j].key));
    return r ? r : (i > j) - (i < j);
}

static int cmp_tname(const void *a, const void *b, void *ctx) {
    const qtx_gguf *g = ctx;
    const int i = *(const int *)a, j = *(const int *)b;
    int r = strcmp(g->tensors[i].name, g->tensors[j].name);
    return r ? r : (i > j) - (i < j);
}

static int cmp_toff(const void *a, const void *b, void *ctx) {
    const qtx_gguf *g = ctx;
    const qtx_gguf_tensor *x = &g->tensors[*(const int *)a], *y = &g->tensors[*(const int *)b];
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Binary search over a sorted index; -1 when absent. */
static int find_kv(const qtx_gguf *g, const char *key) {
    int lo = 0, hi = g->n_kv - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int r = strcmp(str_at(g, g->kvs[g->kv_sorted[mid]].key), key);
        if (!r) return g->kv_sorted[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static int check_unique(cursor *c) {
    qtx_gguf *g = c->g;
    char nm[400];
    g->kv_sorted = qtx_malloc((size_t)(g->n_kv ? g->n_kv : 1) * sizeof(int));
    for (int i = 0; i < g->n_kv; i++) g->kv_sorted[i] = i;
    qsort_r(g->kv_sorted, (size_t)g->n_kv, sizeof(int), cmp_kv, g);
    for (int i = 1; i < g->n_kv; i++) {
        const kv_entry *a = &g->kvs[g->kv_sorted[i - 1]], *b = &g->kvs[g->kv_sorted[i]];
        if (!strcmp(str_at(g, a->key), str_at(g, b->key)))
            return bad(
                c, "key %s appears twice (offsets %" PRIu64 " and %" PRIu64 "); " FIX_CORRUPT,
                printable(str_at(g, b->key), g->strs[b->key].len, nm, sizeof nm), a->at, b->at);
    }
    g->t_sorted = qtx_malloc((size_t)(g->n_tensors ? g->n_tensors : 1) * sizeof(int));
    for (int i = 0; i < g->n_tensors; i++) g->t_sorted[i] = i;
    qsort_r(g->t_sorted, (size_t)g->n_tensors, sizeof(int), cmp_tname, g);
    for (int i = 1; i < g->n_tensors; i++) {
        const int a = g->t_sorted[i - 1], b = g->t_sorted[i];
        if (!strcmp(g->tensors[a].name, g->tensors[b].name))
            return bad(c,
                       "tensor %s appears twice (tensor infos at offsets %" PRIu64 " and %" PRIu64
                       "); " FIX_CORRUPT,
                       printable(g->tensors[b].name, strlen(g->tensors[b].name), nm, sizeof nm),
                       g->tensor_at[a], g->tensor_at[b]);
    }
    return 0;
}

/* Tensor data: aligned, inside the file, no two tensors sharing a byte. */
static int check_data(cursor *c) {
    qtx_gguf *g = c->g;
    char nm[400];
    for (int i = 0; i < g->n_tensors; i++) {
        qtx_gguf_tensor *t = &g->tensors[i];
        const char *tn = printable(t->name, strlen(t->name), nm, sizeof nm);
        if (t->offset % g->alignment)
            return bad(c,
                       "tensor %s has data offset %" PRIu64
                       ", not a multiple of the file's alignment %u (offset %" PRIu64
                       "); " FIX_CORRUPT,
                       tn, t->offset, g->alignment, g->tensor_at[i]);
        if (g->data_start >= g->size || t->offset >= g->size - g->data_start)
            return bad(c,
                       "tensor %s has data offset %" PRIu64 ", past the end of the file (data "
                       "starts at byte %" PRIu64 ", the file has %" PRIu64
                       " bytes) (offset %" PRIu64
                       "); the file is corrupt or incomplete: export or copy it again",
                       tn, t->offset, g->data_start, g->size, g->tensor_at[i]);
        const uint64_t start = g->data_start + t->offset;
        if (t->nbytes > g->size - start)
            return bad(c,
                       "truncated: tensor %s data ends at byte %" PRIu64
                       " but the file has %" PRIu64 " bytes; " FIX_TRUNC,
                       tn, start + t->nbytes, g->size);
        t->data = g->map + start;
    }
    int *by_off = qtx_malloc((size_t)(g->n_tensors ? g->n_tensors : 1) * sizeof(int));
    for (int i = 0; i < g->n_tensors; i++) by_off[i] = i;
    qsort_r(by_off, (size_t)g->n_tensors, sizeof(int), cmp_toff, g);
    int rc = 0;
    for (int i = 1; i < g->n_tensors && !rc; i++) {
        const qtx_gguf_tensor *a = &g->tensors[by_off[i - 1]], *b = &g->tensors[by_off[i]];
        if (a->offset + a->nbytes > b->offset) {
            char nb[400];
            rc = bad(c,
                     "tensors %s (data bytes %" PRIu64 "..%" PRIu64 ") and %s (from %" PRIu64
                     ") overlap; " FIX_CORRUPT,
                     printable(a->name, strlen(a->name), nm, sizeof nm), a->offset,
                     a->offset + a->nbytes, printable(b->name, strlen(b->name), nb, sizeof nb),
                     b->offset);
        }
    }
    free(by_off);
    return rc;
}

/* ---- open / close ------------------------------------------------------------------------- */

static int parse(cursor *c) {
    qtx_gguf *g = c->g;
    if (g->size < 4)
        return bad(c, "not a GGUF file (%" PRIu64 " bytes, too short for the magic 'GGUF')",
                   g->size);
    if (memcmp(g->map, "GGUF", 4)) {
        char magic[64];
        return bad(c, "not a GGUF file (magic '%s', expected 'GGUF')",
                   printable((const char *)g->map, 4, magic, sizeof magic));
    }
    c->pos = 4;
    if (need(c, 20, 0, "the header")) return QTX_ERR_INPUT;
    const uint32_t version = rd_u32(c);
    if (version != QTX_GGUF_VERSION) {
        if (version == 1 || version == 2)
            return bad(c,
                       "GGUF version %u is an old format qtx does not read (offset 4); convert it "
                       "to version 3 with a current llama.cpp, or re-export with qtx export",
                       version);
        if (version == 0x03000000u)
            return bad(c, "big-endian GGUF file (offset 4); qtx reads little-endian GGUF only");
        return bad(c, "GGUF version %u is not supported (offset 4); qtx reads version 3", version);
    }
    const uint64_t n_tensors = rd_u64(c), n_kv = rd_u64(c);
    /* Counts are capped, then checked against the bytes they need at least (a tensor info
     * takes 8 + 1 + 4 + 8 + 4 + 8 bytes, a key-value 8 + 1 + 4 + 1), so nothing absurd is
     * ever allocated. */
    if (n_tensors > QTX_GGUF_MAX_TENSORS)
        return bad(c, "tensor count %" PRIu64 " (offset 8) is absurd (more than %d); " FIX_CORRUPT,
                   n_tensors, QTX_GGUF_MAX_TENSORS);
    if (n_kv > QTX_GGUF_MAX_KV)
        return bad(c,
                   "metadata count %" PRIu64 " (offset 16) is absurd (more than %d); " FIX_CORRUPT,
                   n_kv, QTX_GGUF_MAX_KV);
    if (n_tensors * 33 + n_kv * 14 > g->size - 24)
        return bad(c,
                   "%" PRIu64 " tensors and %" PRIu64
                   " metadata keys (offset 8) need at least %" PRIu64
                   " bytes, more than the file has (%" PRIu64
                   "); the file is corrupt or incomplete: export or copy it again",
                   n_tensors, n_kv, 24 + n_tensors * 33 + n_kv * 14, g->size);
    g->kvs = qtx_calloc((size_t)(n_kv ? n_kv : 1), sizeof *g->kvs);
    for (uint64_t k = 0; k < n_kv; k++)
        if (parse_kv(c, k)) return QTX_ERR_INPUT;

    g->alignment = QTX_GGUF_DEFAULT_ALIGNMENT;
    int ia = -1;
    for (int k = 0; k < g->n_kv; k++)
        if (!strcmp(str_at(g, g->kvs[k].key), "general.alignment")) ia = k;
    if (ia >= 0) {
        const kv_entry *kv = &g->kvs[ia];
        if (kv->type != QTX_GGUF_U32)
            return bad(
                c, "general.alignment is %s, expected uint32 (offset %" PRIu64 "); " FIX_CORRUPT,
                qtx_gguf_type_name(kv->type), kv->at);
        const uint32_t a = (uint32_t)kv->raw;
        if (a == 0 || (a & (a - 1)))
            return bad(
                c, "general.alignment is %u, not a power of two (offset %" PRIu64 "); " FIX_CORRUPT,
                a, kv->at);
        g->alignment = a;
    }

    g->tensors = qtx_calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *g->tensors);
    g->tensor_at = qtx_calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *g->tensor_at);
    for (uint64_t k = 0; k < n_tensors; k++)
        if (parse_tensor_info(c, k)) return QTX_ERR_INPUT;
    /* the arena no longer moves: names become pointers */
    for (int i = 0; i < g->n_tensors; i++)
        g->tensors[i].name = str_at(g, (size_t)(uintptr_t)g->tensors[i].name);
    g->data_start = (c->pos + g->alignment - 1) / g->alignment * g->alignment;
    if (check_unique(c)) return QTX_ERR_INPUT;
    return check_data(c);
}

int qtx_gguf_open(qtx_gguf **out, const char *path, qtx_err *e) {
    return qtx_gguf_open_with(out, path, QTX_GGUF_MAP, e);
}

/* Whether map is a copy of the file (read at open) rather than a mapping of it. */
static int copied(const qtx_gguf *g) {
#ifdef QTX_GGUF_READ_COPY
    (void)g;
    return 1;
#else
    return g->how == QTX_GGUF_COPY;
#endif
}

/* The whole file into m (size bytes); 0 or -1 with errno. */
static int read_all(int fd, uint8_t *m, uint64_t size) {
    uint64_t got = 0;
    while (got < size) {
        const ssize_t k = pread(fd, m + got, (size_t)(size - got), (off_t)got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO; /* the file shrank under us */
            return -1;
        }
        got += (uint64_t)k;
    }
    return 0;
}

int qtx_gguf_open_with(qtx_gguf **out, const char *path, qtx_gguf_load how, qtx_err *e) {
    *out = NULL;
    qtx_gguf *g = qtx_calloc(1, sizeof *g);
    g->how = how;
    g->path = strdup(path);
    QTX_CHECK(g->path, "out of memory");
    g->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (g->fd < 0) {
        int rc = qtx_fail(e, QTX_ERR_INPUT, "%s: cannot open: %s; check the path", path,
                          strerror(errno));
        qtx_gguf_close(g);
        return rc;
    }
    struct stat st;
    if (fstat(g->fd, &st) || !S_ISREG(st.st_mode)) {
        int rc =
            qtx_fail(e, QTX_ERR_INPUT, "%s: not a regular file; pass a .gguf model file", path);
        qtx_gguf_close(g);
        return rc;
    }
    g->size = (uint64_t)st.st_size;
    if (g->size > 0) {
        void *m;
#ifdef QTX_GGUF_READ_COPY
        /* fuzzing: always an exact-size heap copy, so ASan sees any read past the end (a
         * mapping reads zeros up to the end of its last page) */
        (void)how;
        QTX_CHECK(posix_memalign(&m, 4096, (size_t)g->size) == 0, "out of memory");
#else
        m = how == QTX_GGUF_COPY ? qtx_alloc_big((size_t)g->size)
                                 : mmap(NULL, (size_t)g->size, PROT_READ, MAP_PRIVATE, g->fd, 0);
        if (m == MAP_FAILED) {
            int rc = qtx_fail(e, QTX_ERR_INPUT, "%s: cannot map %" PRIu64 " bytes: %s", path,
                              g->size, strerror(errno));
            qtx_gguf_close(g);
            return rc;
        }
#endif
        g->map = m;
        if (copied(g) && read_all(g->fd, m, g->size)) {
            int rc = qtx_fail(e, QTX_ERR_INPUT, "%s: cannot read: %s", path, strerror(errno));
            qtx_gguf_close(g);
            return rc;
        }
    }
    cursor c = {.g = g, .pos = 0, .e = e};
    if (parse(&c)) {
        qtx_gguf_close(g);
        return QTX_ERR_INPUT;
    }
    *out = g;
    return 0;
}

void qtx_gguf_close(qtx_gguf *g) {
    if (!g) return;
#ifdef QTX_GGUF_READ_COPY
    free((void *)g->map);
#else
    if (g->map && g->how == QTX_GGUF_COPY)
        qtx_free_big((void *)g->map, (size_t)g->size);
    else if (g->map)
        munmap((void *)g->map, (size_t)g->size);
#endif
    if (g->fd >= 0) close(g->fd);
    free(g->path);
    free(g->arena);
    free(g->strs);
    free(g->nums);
    free(g->kvs);
    free(g->kv_sorted);
    free(g->tensors);
    free(g->tensor_at);
    free(g->t_sorted);
    free(g);
}

const char *qtx_gguf_path(const qtx_gguf *g) {
    return g->path;
}
uint32_t qtx_gguf_alignment(const qtx_gguf *g) {
    return g->alignment;
}
uint64_t qtx_gguf_file_size(const qtx_gguf *g) {
    return g->size;
}

/* ---- metadata access ---------------------------------------------------------------------- */

int qtx_gguf_n_kv(const qtx_gguf *g) {
    return g->n_kv;
}

const char *qtx_gguf_key_at(const qtx_gguf *g, int i, int *type, int *elem_type) {
    if (i < 0 || i >= g->n_kv) return NULL;
    if (type) *type = g->kvs[i].type;
    if (elem_type) *elem_type = g->kvs[i].type == QTX_GGUF_ARR ? g->kvs[i].elem_type : -1;
    return str_at(g, g->kvs[i].key);
}

int qtx_gguf_has(const qtx_gguf *g, const char *key) {
    return find_kv(g, key) >= 0;
}

/* The entry of key if it has type `type`; else NULL with the error filled. */
static const kv_entry *typed(const qtx_gguf *g, const char *key, int type, qtx_err *e) {
    const int i = find_kv(g, key);
    if (i < 0) {
        qtx_fail(e, QTX_ERR_INPUT,
                 "%s: metadata key %s is missing (expected %s); the file was not exported for "
                 "this use: " FIX_REEXPORT,
                 g->path, key, qtx_gguf_type_name(type));
        return NULL;
    }
    const kv_entry *kv = &g->kvs[i];
    if (kv->type != type) {
        char found[64];
        if (kv->type == QTX_GGUF_ARR)
            snprintf(found, sizeof found, "an array of %s", qtx_gguf_type_name(kv->elem_type));
        else
            snprintf(found, sizeof found, "%s", qtx_gguf_type_name(kv->type));
        qtx_fail(e, QTX_ERR_INPUT,
                 "%s: metadata key %s is %s, expected %s (offset %" PRIu64 "); " FIX_REEXPORT,
                 g->path, key, found, type == QTX_GGUF_ARR ? "an array" : qtx_gguf_type_name(type),
                 kv->at);
        return NULL;
    }
    return kv;
}

int qtx_gguf_get_u32(const qtx_gguf *g, const char *key, uint32_t *v, qtx_err *e) {
    const kv_entry *kv = typed(g, key, QTX_GGUF_U32, e);
    if (!kv) return QTX_ERR_INPUT;
    *v = (uint32_t)kv->raw;
    return 0;
}

int qtx_gguf_get_i32(const qtx_gguf *g, const char *key, int32_t *v, qtx_err *e) {
    const kv_entry *kv = typed(g, key, QTX_GGUF_I32, e);
    if (!kv) return QTX_ERR_INPUT;
    uint32_t u = (uint32_t)kv->raw;
    memcpy(v, &u, 4);
    return 0;
}

int qtx_gguf_get_u64(const qtx_gguf *g, const char *key, uint64_t *v, qtx_err *e) {
    const kv_entry *kv = typed(g, key, QTX_GGUF_U64, e);
    if (!kv) return QTX_ERR_INPUT;
    *v = kv->raw;
    return 0;
}

int qtx_gguf_get_f32(const qtx_gguf *g, const char *key, float *v, qtx_err *e) {
    const kv_entry *kv = typed(g, key, QTX_GGUF_F32, e);
    if (!kv) return QTX_ERR_INPUT;
    uint32_t u = (uint32_t)kv->raw;
    memcpy(v, &u, 4);
    return 0;
}

int qtx_gguf_get_bool(const qtx_gguf *g, const char *key, int *v, qtx_err *e) {
    const kv_entry *kv = typed(g, key, QTX_GGUF_BOOL, e);
    if (!kv) return QTX_ERR_INPUT;
    *v = kv->raw != 0;
    return 0;
}

int qtx_gguf_get_str(const qtx_gguf *g, const char *key, const char **s, size_t *len, qtx_err *e) {
    const kv_entry *kv = typed(g, key, QTX_GGUF_STR, e);
    if (!kv) return QTX_ERR_INPUT;
    *s = str_at(g, kv->str);
    if (len) *len = g->strs[kv->str].len;
    return 0;
}

int qtx_gguf_get_arr(const qtx_gguf *g, const char *key, int *elem_type, uint64_t *n, qtx_err *e) {
    const kv_entry *kv = typed(g, key, QTX_GGUF_ARR, e);
    if (!kv) return QTX_ERR_INPUT;
    if (elem_type) *elem_type = kv->elem_type;
    if (n) *n = kv->n;
    return 0;
}

int qtx_gguf_arr_str(const qtx_gguf *g, const char *key, uint64_t i, const char **s, size_t *len) {
    const int k = find_kv(g, key);
    if (k < 0) return -1;
    const kv_entry *kv = &g->kvs[k];
    if (kv->type != QTX_GGUF_ARR || kv->elem_type != QTX_GGUF_STR || i >= kv->n) return -1;
    const size_t idx = kv->str + (size_t)i;
    *s = str_at(g, idx);
    if (len) *len = g->strs[idx].len;
    return 0;
}

const void *qtx_gguf_arr_data(const qtx_gguf *g, const char *key) {
    const int k = find_kv(g, key);
    if (k < 0) return NULL;
    const kv_entry *kv = &g->kvs[k];
    if (kv->type != QTX_GGUF_ARR || !scalar_size(kv->elem_type)) return NULL;
    return (const char *)g->nums + kv->num;
}

/* ---- tensors ------------------------------------------------------------------------------ */

int qtx_gguf_n_tensors(const qtx_gguf *g) {
    return g->n_tensors;
}

const qtx_gguf_tensor *qtx_gguf_tensor_at(const qtx_gguf *g, int i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const qtx_gguf_tensor *qtx_gguf_find(const qtx_gguf *g, const char *name) {
    int lo = 0, hi = g->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const qtx_gguf_tensor *t = &g->tensors[g->t_sorted[mid]];
        int r = strcmp(t->name, name);
        if (!r) return t;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}
