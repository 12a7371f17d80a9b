/* config_schema.c: the one table of configuration keys, and how each type is parsed,
 * range-checked and printed. Adding a field to qtx_config means adding one line here;
 * tests/unit/test_launch_config.c fails until every field has its entry. */
#include "config_schema.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SCHEDULE_NAMES[] = {"cosine", "linear", "wsd", "constant", NULL};
static const char *const DEVICE_NAMES[] = {"cpu", "cuda", "staged", NULL};
static const char *const PRECISION_NAMES[] = {"fp32", "bf16", NULL};

const char *qtx_device_type_name(qtx_device_type t) {
    return (unsigned)t < sizeof DEVICE_NAMES / sizeof DEVICE_NAMES[0] - 1 ? DEVICE_NAMES[t] : "?";
}

/* Offset and size of qtx_config's field sec.key; the _Generic fails to compile when the
 * field's C type is not ctype, so an entry cannot silently disagree with its struct. */
#define AT(sec, key, ctype)                                                                        \
    offsetof(qtx_config, sec.key) + 0 * sizeof(_Generic(((qtx_config *)0)->sec.key, ctype : 1)),   \
        sizeof(((qtx_config *)0)->sec.key)
#define ENTRY(sec, key, type, ctype, flags, def, lo, hi, names, meaning)                           \
    { #sec, #key, #sec "." #key, type, flags, AT(sec, key, ctype), def, lo, hi, names, meaning }
#define INT(sec, key, def, lo, hi, meaning)                                                        \
    ENTRY(sec, key, QTX_CFG_INT, int, 0, def, lo, hi, NULL, meaning)
#define INT_AUTO(sec, key, def, lo, hi, meaning)                                                   \
    ENTRY(sec, key, QTX_CFG_INT, int, QTX_CFG_AUTO, def, lo, hi, NULL, meaning)
#define U64(sec, key, def, meaning)                                                                \
    ENTRY(sec, key, QTX_CFG_U64, uint64_t, 0, def, 0, 0, NULL, meaning)
#define FLT(sec, key, def, lo, hi, flags, meaning)                                                 \
    ENTRY(sec, key, QTX_CFG_FLOAT, float, flags, def, lo, hi, NULL, meaning)
#define DBL(sec, key, def, lo, hi, flags, meaning)                                                 \
    ENTRY(sec, key, QTX_CFG_DOUBLE, double, flags, def, lo, hi, NULL, meaning)
#define BOOL(sec, key, def, meaning) ENTRY(sec, key, QTX_CFG_BOOL, int, 0, def, 0, 1, NULL, meaning)
#define STR(sec, key, def, meaning)                                                                \
    ENTRY(sec, key, QTX_CFG_STRING, char *, 0, def, 0, 0, NULL, meaning)
#define ENUM(sec, key, ctype, names, def, meaning)                                                 \
    ENTRY(sec, key, QTX_CFG_ENUM, ctype, 0, def, 0, 0, names, meaning)

#define OPEN_LO QTX_CFG_MIN_OPEN
#define OPEN_HI QTX_CFG_MAX_OPEN
#define BIG 1000000000 /* "practically unlimited" for step counts */

/* Defaults follow llm.c / nanoGPT for a GPT-2-small-sized Llama; configs/ set real runs. */
const qtx_cfg_key qtx_cfg_keys[] = {
    INT(model, vocab_size, "32000", 1, 16777216,
        "token ids are 0 .. vocab_size-1; must match the tokenizer of the shards"),
    INT(model, dim, "768", 1, 65536, "model width; a multiple of n_heads with an even head size"),
    INT(model, n_layers, "12", 1, 1024, "transformer blocks"),
    INT(model, n_heads, "12", 1, 1024, "query heads; head size is dim / n_heads"),
    INT(model, n_kv_heads, "12", 1, 1024,
        "key/value heads (grouped-query attention); divides n_heads"),
    INT(model, ffn_dim, "2048", 1, 1048576, "hidden size of the SwiGLU MLP"),
    INT(model, max_seq_len, "1024", 1, 1048576, "longest context the model is built for"),
    FLT(model, rope_theta, "10000", 0, 1e9, OPEN_LO, "RoPE base frequency"),
    FLT(model, norm_eps, "1e-5", 0, 0.1, OPEN_LO, "RMSNorm epsilon"),
    BOOL(model, tie_embeddings, "false", "the output head reuses the token embedding matrix"),

    STR(data, train, "",
        "glob of training shards written by qtx prep, e.g. data/tiny/train_*.h5; required"),
    STR(data, val, "", "glob of validation shards; empty: no validation"),
    INT(data, seq_len, "1024", 1, 1048576, "tokens per training sequence; at most max_seq_len"),
    INT(data, global_batch, "32", 1, 16777216,
        "sequences per optimizer step, the same for every parallel layout"),
    INT(data, micro_batch, "4", 1, 65536,
        "sequences per forward/backward pass on one rank; divides global_batch / dp"),
    U64(data, seed, "1234", "seed of the sample order"),

    DBL(optim, lr, "3e-4", 0, 10, OPEN_LO, "peak learning rate, reached at the end of warmup"),
    DBL(optim, min_lr, "3e-5", 0, 10, 0, "learning rate at the end of the decay; at most lr"),
    INT(optim, warmup_steps, "100", 0, BIG, "steps of linear warmup to lr; at most train.steps"),
    ENUM(optim, schedule, qtx_schedule, SCHEDULE_NAMES, "cosine",
         "after warmup: cosine or linear decay to min_lr, wsd (stable, then linear decay), "
         "or constant"),
    DBL(optim, decay_frac, "0.2", 0, 1, 0,
        "wsd only: share of the post-warmup steps spent decaying to min_lr"),
    DBL(optim, beta1, "0.9", 0, 1, OPEN_HI, "AdamW first-moment decay"),
    DBL(optim, beta2, "0.95", 0, 1, OPEN_HI, "AdamW second-moment decay"),
    DBL(optim, eps, "1e-8", 0, 1, OPEN_LO, "AdamW denominator epsilon"),
    DBL(optim, weight_decay, "0.1", 0, 10, 0, "decoupled weight decay, on 2-D weights only"),
    DBL(optim, grad_clip, "1.0", 0, 1e6, 0, "clip the global gradient L2 norm to this; 0: off"),
    INT(optim, max_skips, "5", 1, 1000000,
        "consecutive non-finite steps skipped before the run stops"),

    INT(train, steps, "1000", 1, BIG, "optimizer steps to run"),
    U64(train, seed, "1337", "seed of the weight initialisation"),
    STR(train, out_dir, "runs/default", "run directory: metrics, logs and checkpoints"),
    INT(train, log_every, "1", 1, BIG, "steps between metric lines"),
    INT(train, eval_every, "0", 0, BIG,
        "steps between validation passes; 0: none (needs data.val)"),
    INT(train, eval_batches, "8", 1, 1000000, "micro-batches per validation pass"),
    INT(train, ckpt_every, "0", 0, BIG, "steps between checkpoints; 0: only at the end"),
    INT(train, ckpt_keep, "2", 1, 1000000, "checkpoints kept; older ones are deleted"),
    STR(train, resume, "",
        "latest (fail if none), auto (resume if one exists) or a checkpoint path; empty: fresh"),
    DBL(train, peak_flops, "0", 0, 1e21, 0,
        "peak FLOP/s per rank for MFU; 0: measure a GEMM at start"),

    INT_AUTO(parallel, dp, "auto", 0, 65536,
             "data-parallel ranks; auto (or 0): world size / (tp x pp)"),
    INT(parallel, tp, "1", 1, 1024,
        "tensor-parallel ranks; divides n_heads, n_kv_heads, ffn_dim and vocab_size"),
    INT(parallel, pp, "1", 1, 1024, "pipeline stages; at most n_layers"),
    INT(parallel, zero, "0", 0, 2,
        "ZeRO stage over the dp ranks: 0 off, 1 shards optimizer state, 2 also gradients"),
    INT(parallel, micro_batches, "0", 0, 1000000,
        "micro-batches per step per dp rank; 0: global_batch / (dp x micro_batch)"),
    STR(parallel, stage_layers, "",
        "layers per pipeline stage, comma-separated (e.g. 3,5); empty: as even as possible"),

    ENUM(device, type, qtx_device_type, DEVICE_NAMES, "cpu",
         "where the model runs: cpu; cuda (one GPU per rank, the node-local rank's, collectives "
         "over NCCL); staged (the CPU kernels through the GPU code path: every buffer moved as "
         "on a device; checks that path without a GPU)"),
    INT(device, threads, "0", 0, 4096, "CPU threads per rank; 0: the node's cores / its ranks"),
    ENUM(device, precision, qtx_precision, PRECISION_NAMES, "fp32",
         "matrix products on cuda: fp32, or bf16 (inputs rounded to bf16, fp32 accumulation; "
         "master weights, gradients and AdamW stay fp32); staged emulates bf16 on the CPU"),
    BOOL(device, bf16_param_copy, "true",
         "bf16 only: the weights come from one bf16 copy of the parameters, converted once "
         "per optimizer step (2 bytes per parameter on cuda); false rounds them at every "
         "product (less memory, more conversion; the same results)"),
};
const int qtx_cfg_n_keys = (int)(sizeof qtx_cfg_keys / sizeof qtx_cfg_keys[0]);
_Static_assert(sizeof qtx_cfg_keys / sizeof qtx_cfg_keys[0] <= QTX_CFG_MAX_KEYS,
               "raise QTX_CFG_MAX_KEYS");

const qtx_cfg_section qtx_cfg_sections[] = {
    {"model", "Shapes of the Llama-family model."},
    {"data", "Where the training tokens come from and how they are batched."},
    {"optim", "AdamW and the learning-rate schedule."},
    {"train", "The run: length, seeds, logging, evaluation, checkpoints."},
    {"parallel", "How the ranks are split: world size = dp x tp x pp."},
    {"device", "Where and on how many threads each rank computes."},
};
const int qtx_cfg_n_sections = (int)(sizeof qtx_cfg_sections / sizeof qtx_cfg_sections[0]);

int qtx_cfg_find(const char *section, const char *name, size_t n) {
    for (int i = 0; i < qtx_cfg_n_keys; i++) {
        const qtx_cfg_key *k = &qtx_cfg_keys[i];
        if (!strcmp(k->section, section) && strlen(k->name) == n && !memcmp(k->name, name, n))
            return i;
    }
    return -1;
}

int qtx_cfg_find_path(const char *path, size_t n) {
    for (int i = 0; i < qtx_cfg_n_keys; i++)
        if (strlen(qtx_cfg_keys[i].path) == n && !memcmp(qtx_cfg_keys[i].path, path, n)) return i;
    return -1;
}

int qtx_cfg_find_section(const char *name) {
    for (int i = 0; i < qtx_cfg_n_sections; i++)
        if (!strcmp(qtx_cfg_sections[i].name, name)) return i;
    return -1;
}

/* ---- text helpers ------------------------------------------------------------------------ */

void qtx_cfg_show(const char *text, size_t len, char *buf, size_t n) {
    const size_t keep = 60;
    size_t m = len;
    int cut = 0;
    if (m > keep) {
        m = keep;
        /* do not split a UTF-8 sequence */
        while (m > 0 && ((unsigned char)text[m] & 0xC0) == 0x80) m--;
        cut = 1;
    }
    size_t j = 0;
    for (size_t i = 0; i < m && j + 1 < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        buf[j++] = (ch < 0x20 || ch == 0x7F) ? '?' : (char)ch;
    }
    if (cut)
        for (int d = 0; d < 3 && j + 1 < n; d++) buf[j++] = '.';
    buf[j < n ? j : n - 1] = '\0';
}

static char lower(char ch) {
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

int qtx_cfg_distance(const char *a, const char *b) {
    enum { MAXL = 64 };
    const int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > MAXL || lb > MAXL) return 1000;
    int rows[3][MAXL + 1]; /* rows[i % 3]: distances of a[0..i) against b[0..j) */
    for (int j = 0; j <= lb; j++) rows[0][j] = j;
    for (int i = 1; i <= la; i++) {
        int *cur = rows[i % 3], *prev = rows[(i - 1) % 3], *prev2 = rows[(i + 1) % 3];
        cur[0] = i;
        for (int j = 1; j <= lb; j++) {
            const int cost = lower(a[i - 1]) != lower(b[j - 1]);
            int d = prev[j - 1] + cost;
            if (prev[j] + 1 < d) d = prev[j] + 1;
            if (cur[j - 1] + 1 < d) d = cur[j - 1] + 1;
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                lower(a[i - 2]) == lower(b[j - 1]) && prev2[j - 2] + 1 < d)
                d = prev2[j - 2] + 1;
            cur[j] = d;
        }
    }
    return rows[la % 3][lb];
}

/* Shortest %g text that reads back to the same double (or float, when is_float). */
void qtx_cfg_format_real(double v, int is_float, char *buf, size_t n) {
    if (v == floor(v) && fabs(v) < 1e7) {
        snprintf(buf, n, "%.0f", v);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        const double r = strtod(buf, NULL);
        if (is_float ? (float)r == (float)v : r == v) break;
    }
    /* "1e-05" -> "1e-5", "1e+09" -> "1e9": the same number, as people write it. */
    char *x = strchr(buf, 'e');
    if (x) {
        char *src = x + 1, *dst = x + 1;
        if (*src == '+')
            src++;
        else if (*src == '-')
            *dst++ = *src++;
        while (*src == '0' && src[1]) src++;
        memmove(dst, src, strlen(src) + 1);
    }
}

static void join_names(const char *const *names, char *buf, size_t n) {
    size_t j = 0;
    buf[0] = '\0';
    for (int i = 0; names[i]; i++) {
        int w = snprintf(buf + j, n - j, "%s%s", i ? ", " : "", names[i]);
        if (w < 0 || (size_t)w >= n - j) break;
        j += (size_t)w;
    }
}

static const char *type_noun(const qtx_cfg_key *k) {
    switch (k->type) {
    case QTX_CFG_INT:
        return k->flags & QTX_CFG_AUTO ? "an integer or auto" : "an integer";
    case QTX_CFG_U64:
        return "a non-negative integer";
    case QTX_CFG_FLOAT:
    case QTX_CFG_DOUBLE:
        return "a number";
    case QTX_CFG_BOOL:
        return "true or false";
    case QTX_CFG_STRING:
        return "a string";
    case QTX_CFG_ENUM:
        return "a name";
    }
    return "a value";
}

void qtx_cfg_expected(const qtx_cfg_key *k, char *buf, size_t n) {
    if (k->type == QTX_CFG_ENUM) {
        char names[256];
        join_names(k->names, names, sizeof names);
        snprintf(buf, n, "one of %s", names);
    } else {
        snprintf(buf, n, "%s", type_noun(k));
    }
}

const char *qtx_cfg_type_text(const qtx_cfg_key *k) {
    switch (k->type) {
    case QTX_CFG_INT:
        return k->flags & QTX_CFG_AUTO ? "int or auto" : "int";
    case QTX_CFG_U64:
        return "uint64";
    case QTX_CFG_FLOAT:
        return "float";
    case QTX_CFG_DOUBLE:
        return "double";
    case QTX_CFG_BOOL:
        return "bool";
    case QTX_CFG_STRING:
        return "string";
    case QTX_CFG_ENUM:
        return "enum";
    }
    return "?";
}

void qtx_cfg_range_text(const qtx_cfg_key *k, char *buf, size_t n) {
    char lo[32], hi[32];
    switch (k->type) {
    case QTX_CFG_INT:
        snprintf(buf, n, "[%.0f, %.0f]%s", k->min, k->max,
                 k->flags & QTX_CFG_AUTO ? " or auto" : "");
        return;
    case QTX_CFG_U64:
        snprintf(buf, n, "[0, %" PRIu64 "]", UINT64_MAX);
        return;
    case QTX_CFG_FLOAT:
    case QTX_CFG_DOUBLE:
        qtx_cfg_format_real(k->min, 0, lo, sizeof lo);
        qtx_cfg_format_real(k->max, 0, hi, sizeof hi);
        snprintf(buf, n, "%c%s, %s%c", k->flags & QTX_CFG_MIN_OPEN ? '(' : '[', lo, hi,
                 k->flags & QTX_CFG_MAX_OPEN ? ')' : ']');
        return;
    case QTX_CFG_BOOL:
        snprintf(buf, n, "true, false");
        return;
    case QTX_CFG_STRING:
        snprintf(buf, n, "up to %zu bytes", k->size - 1);
        return;
    case QTX_CFG_ENUM:
        join_names(k->names, buf, n);
        return;
    }
}

/* ---- parsing ----------------------------------------------------------------------------- */

static int is_digit(char ch) {
    return ch >= '0' && ch <= '9';
}

/* [+-]?digits, nothing else. */
static int looks_integer(const char *s) {
    if (*s == '+' || *s == '-') s++;
    if (!is_digit(*s)) return 0;
    while (is_digit(*s)) s++;
    return *s == '\0';
}

/* A decimal real: digits, '.', exponent; no hex, inf, nan or spaces, which strtod would take. */
static int parse_real(const char *s, double *v, int *overflow) {
    int digits = 0;
    for (const char *p = s; *p; p++) {
        if (is_digit(*p))
            digits = 1;
        else if (!strchr("+-.eE", *p))
            return -1;
    }
    if (!digits) return -1;
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    if (*end || end == s) return -1;
    *overflow = errno == ERANGE && fabs(*v) > 1.0;
    return 0;
}

static int in_range(const qtx_cfg_key *k, double v) {
    if (k->flags & QTX_CFG_MIN_OPEN ? v <= k->min : v < k->min) return 0;
    if (k->flags & QTX_CFG_MAX_OPEN ? v >= k->max : v > k->max) return 0;
    return 1;
}

static int out_of_range(const qtx_cfg_key *k, const char *shown, char *why, size_t why_n) {
    char r[64];
    qtx_cfg_range_text(k, r, sizeof r);
    snprintf(why, why_n, "%s is out of range %s", shown, r);
    return -1;
}

static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        const unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + len > n) return 0;
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

static void suggest_name(const char *const *names, const char *got, char *buf, size_t n) {
    int best = -1, best_d = 1 + (int)strlen(got) / 4 + 1;
    for (int i = 0; names[i]; i++) {
        const int d = qtx_cfg_distance(got, names[i]);
        if (d < best_d) best = i, best_d = d;
    }
    if (best >= 0)
        snprintf(buf, n, " (did you mean '%s'?)", names[best]);
    else
        buf[0] = '\0';
}

int qtx_cfg_parse(const qtx_cfg_key *k, const char *text, size_t len, qtx_config *c, char *why,
                  size_t why_n) {
    char *field = (char *)c + k->offset;
    char shown[96];
    qtx_cfg_show(text, len, shown, sizeof shown);

    if (k->type == QTX_CFG_STRING) {
        if (memchr(text, '\0', len)) {
            snprintf(why, why_n, "'%s' contains a NUL byte; remove it", shown);
            return -1;
        }
        if (len >= k->size) {
            snprintf(why, why_n, "value is %zu bytes long; the limit is %zu", len, k->size - 1);
            return -1;
        }
        if (!valid_utf8((const unsigned char *)text, len)) {
            snprintf(why, why_n, "'%s' is not valid UTF-8", shown);
            return -1;
        }
        /* Zero the tail too, so equal configs are equal byte for byte. */
        memset(field, 0, k->size);
        memcpy(field, text, len);
        return 0;
    }

    /* Every non-string value is short; a long or NUL-holding one is simply wrong. */
    char s[128];
    const int fits = len < sizeof s && !memchr(text, '\0', len);
    if (fits) {
        memcpy(s, text, len);
        s[len] = '\0';
    } else {
        s[0] = '\0';
    }
    if (len == 0) {
        snprintf(why, why_n, "expected %s, got an empty value", type_noun(k));
        return -1;
    }

    switch (k->type) {
    case QTX_CFG_INT:
    case QTX_CFG_U64: {
        if ((k->flags & QTX_CFG_AUTO) && !strcmp(s, "auto")) {
            *(int *)field = 0;
            return 0;
        }
        const int digits_only = fits && looks_integer(s);
        if (!digits_only) {
            /* A long run of digits is an overflow, not a type error. */
            size_t i = (len && (text[0] == '-' || text[0] == '+')) ? 1 : 0, d = i;
            while (d < len && is_digit(text[d])) d++;
            if (d == len && d > i) return out_of_range(k, shown, why, why_n);
            double r;
            int ovf;
            if (fits && parse_real(s, &r, &ovf) == 0 && !ovf && r == floor(r) && fabs(r) < 1e18)
                snprintf(why, why_n, "expected %s, got '%s' (write %.0f)", type_noun(k), shown, r);
            else
                snprintf(why, why_n, "expected %s, got '%s'", type_noun(k), shown);
            return -1;
        }
        const char *digits = s + (s[0] == '+' || s[0] == '-');
        if (digits[0] == '0' && digits[1]) {
            snprintf(why, why_n, "expected a decimal integer without leading zeros, got '%s'",
                     shown);
            return -1;
        }
        errno = 0;
        if (k->type == QTX_CFG_U64) {
            if (s[0] == '-') return out_of_range(k, shown, why, why_n);
            const unsigned long long v = strtoull(s, NULL, 10);
            if (errno == ERANGE) return out_of_range(k, shown, why, why_n);
            *(uint64_t *)field = (uint64_t)v;
            return 0;
        }
        const long long v = strtoll(s, NULL, 10);
        if (errno == ERANGE || !in_range(k, (double)v)) return out_of_range(k, shown, why, why_n);
        *(int *)field = (int)v;
        return 0;
    }
    case QTX_CFG_FLOAT:
    case QTX_CFG_DOUBLE: {
        double v;
        int ovf = 0;
        if (!fits || parse_real(s, &v, &ovf) != 0) {
            snprintf(why, why_n, "expected %s, got '%s'", type_noun(k), shown);
            return -1;
        }
        if (ovf || !isfinite(v) || !in_range(k, v)) return out_of_range(k, shown, why, why_n);
        if (k->type == QTX_CFG_FLOAT) {
            const float f = (float)v;
            if (!isfinite(f) || (v != 0.0 && f == 0.0f)) {
                snprintf(why, why_n, "%s does not fit a 32-bit float", shown);
                return -1;
            }
            *(float *)(void *)field = f;
        } else {
            *(double *)(void *)field = v;
        }
        return 0;
    }
    case QTX_CFG_BOOL:
        if (!strcmp(s, "true"))
            *(int *)field = 1;
        else if (!strcmp(s, "false"))
            *(int *)field = 0;
        else {
            snprintf(why, why_n, "expected true or false, got '%s'", shown);
            return -1;
        }
        return 0;
    case QTX_CFG_ENUM: {
        for (int i = 0; k->names[i]; i++)
            if (fits && !strcmp(s, k->names[i])) {
                *(int *)field = i;
                return 0;
            }
        char names[256], hint[96];
        join_names(k->names, names, sizeof names);
        suggest_name(k->names, fits ? s : "", hint, sizeof hint);
        snprintf(why, why_n, "'%s' is not one of %s%s", shown, names, hint);
        return -1;
    }
    case QTX_CFG_STRING:
        break;
    }
    return -1;
}

int qtx_cfg_check_range(const qtx_cfg_key *k, const qtx_config *c, char *why, size_t why_n) {
    const char *field = (const char *)c + k->offset;
    char v[64];
    switch (k->type) {
    case QTX_CFG_INT: {
        const int x = *(const int *)field;
        if (in_range(k, x)) return 0;
        snprintf(v, sizeof v, "%d", x);
        return out_of_range(k, v, why, why_n);
    }
    case QTX_CFG_U64:
        return 0;
    case QTX_CFG_FLOAT:
    case QTX_CFG_DOUBLE: {
        const double x = k->type == QTX_CFG_FLOAT ? (double)*(const float *)(const void *)field
                                                  : *(const double *)(const void *)field;
        if (isfinite(x) && in_range(k, x)) return 0;
        qtx_cfg_format_real(x, k->type == QTX_CFG_FLOAT, v, sizeof v);
        return out_of_range(k, v, why, why_n);
    }
    case QTX_CFG_BOOL: {
        const int x = *(const int *)field;
        if (x == 0 || x == 1) return 0;
        snprintf(why, why_n, "%d is not a bool; use true or false", x);
        return -1;
    }
    case QTX_CFG_ENUM: {
        const int x = *(const int *)field;
        int n = 0;
        while (k->names[n]) n++;
        if (x >= 0 && x < n) return 0;
        char names[256];
        join_names(k->names, names, sizeof names);
        snprintf(why, why_n, "%d is not one of %s", x, names);
        return -1;
    }
    case QTX_CFG_STRING:
        if (memchr(field, '\0', k->size)) return 0;
        snprintf(why, why_n, "value is not NUL-terminated within %zu bytes", k->size);
        return -1;
    }
    return 0;
}

/* ---- printing ---------------------------------------------------------------------------- */

/* YAML double-quoted scalar; escapes what would not read back byte for byte (quotes,
 * backslashes, control bytes, and the Unicode line breaks YAML folds). */
static void format_string(const char *s, char *buf, size_t n) {
    size_t j = 0;
#define PUT(str)                                                                                   \
    do {                                                                                           \
        const char *p_ = (str);                                                                    \
        while (*p_ && j + 2 < n) buf[j++] = *p_++;                                                 \
    } while (0)
    PUT("\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8] = {0};
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7F) {
            snprintf(esc, sizeof esc, "\\x%02x", *p);
        } else if (p[0] == 0xC2 && p[1] == 0x85) {
            memcpy(esc, "\\N", sizeof "\\N"), p += 1;
        } else if (p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) {
            memcpy(esc, p[2] == 0xA8 ? "\\L" : "\\P", sizeof "\\L"), p += 2;
        } else {
            esc[0] = (char)*p;
        }
        PUT(esc);
    }
    PUT("\"");
#undef PUT
    buf[j] = '\0';
}

void qtx_cfg_format(const qtx_cfg_key *k, const qtx_config *c, char *buf, size_t n) {
    const char *field = (const char *)c + k->offset;
    switch (k->type) {
    case QTX_CFG_INT: {
        const int v = *(const int *)field;
        if ((k->flags & QTX_CFG_AUTO) && v == 0)
            snprintf(buf, n, "auto");
        else
            snprintf(buf, n, "%d", v);
        return;
    }
    case QTX_CFG_U64:
        snprintf(buf, n, "%" PRIu64, *(const uint64_t *)field);
        return;
    case QTX_CFG_FLOAT:
        qtx_cfg_format_real((double)*(const float *)(const void *)field, 1, buf, n);
        return;
    case QTX_CFG_DOUBLE:
        qtx_cfg_format_real(*(const double *)(const void *)field, 0, buf, n);
        return;
    case QTX_CFG_BOOL:
        snprintf(buf, n, "%s", *(const int *)field ? "true" : "false");
        return;
    case QTX_CFG_ENUM: {
        const int v = *(const int *)field;
        int count = 0;
        while (k->names[count]) count++;
        if (v >= 0 && v < count)
            snprintf(buf, n, "%s", k->names[v]);
        else
            snprintf(buf, n, "%d", v);
        return;
    }
    case QTX_CFG_STRING:
        format_string(field, buf, n);
        return;
    }
}
