/* pretok.c: the GPT-2 pre-tokenizer: splits text into the pieces that BPE then merges
 * within, exactly as Hugging Face's ByteLevel pre-tokenizer (use_regex) does for valid UTF-8,
 * and byte by byte through invalid UTF-8 so that any input round-trips. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* Hugging Face's pattern is 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|
 * \s+(?!\S)|\s+ run by Oniguruma, whose \s is the Unicode White_Space property. PCRE2's \s
 * (with UCP) also matches U+180E, Mongolian vowel separator, White_Space only before Unicode
 * 6.3; so the class is spelled out: White_Space as it stands since then. */
#define WS                                                                                         \
    "\\t-\\r "                                                                                     \
    "\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
static const char PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+"
                              "| ?[^" WS "\\p{L}\\p{N}]+"
                              "|[" WS "]+(?![^" WS "])|[" WS "]+";

pcre2_code *qtx_pretok_compile(qtx_err *e) {
    int err;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)PATTERN, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &err, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        qtx_fail(e, QTX_ERR_RUNTIME, "PCRE2 cannot compile the pre-tokenizer pattern: %s",
                 (const char *)msg);
        return NULL;
    }
    /* JIT is several times faster; without it (unsupported CPU) the interpreter is used. */
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

/* Match data is written by every match: give each thread's its own cache lines. */
static void *line_malloc(PCRE2_SIZE n, void *unused) {
    (void)unused;
    return aligned_alloc(64, (n + 63) / 64 * 64);
}

static void line_free(void *p, void *unused) {
    (void)unused;
    free(p);
}

void qtx_pretok_init(qtx_pretok *p, const pcre2_code *re) {
    p->re = re;
    pcre2_general_context *g = pcre2_general_context_create(line_malloc, line_free, NULL);
    QTX_CHECK(g, "out of memory creating a PCRE2 context");
    p->md = pcre2_match_data_create(1, g);
    pcre2_general_context_free(g); /* the match data keeps its own copy of the allocator */
    QTX_CHECK(p->md, "out of memory creating PCRE2 match data");
    size_t jit_size = 0;
    p->jit = pcre2_pattern_info(re, PCRE2_INFO_JITSIZE, &jit_size) == 0 && jit_size > 0;
}

void qtx_pretok_free(qtx_pretok *p) {
    pcre2_match_data_free(p->md);
    p->md = NULL;
}

/* One valid UTF-8 stretch. Every character matches some alternative of the pattern, so
 * anchored matches tile the stretch; should a match ever fail anyway (a resource limit), the
 * next character becomes a piece of its own and the tiling still holds. */
static void split_valid(qtx_pretok *p, const char *s, size_t n, qtx_piece_fn fn, void *ctx) {
    const uint32_t opts = PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
    size_t off = 0;
    while (off < n) {
        int rc = p->jit ? pcre2_jit_match(p->re, (PCRE2_SPTR)s, n, off, opts, p->md, NULL)
                        : pcre2_match(p->re, (PCRE2_SPTR)s, n, off, opts, p->md, NULL);
        size_t end;
        if (rc > 0 && ov[1] > off) {
            end = ov[1];
        } else {
            end = off + (size_t)qtx_utf8_seq_len((const uint8_t *)s + off, n - off);
        }
        fn(ctx, s + off, end - off);
        off = end;
    }
}

void qtx_pretok_run(qtx_pretok *p, const char *text, size_t len, qtx_piece_fn fn, void *ctx) {
    const uint8_t *u = (const uint8_t *)text;
    size_t pos = 0;
    while (pos < len) {
        size_t v = qtx_utf8_valid_prefix(u + pos, len - pos);
        if (v) split_valid(p, text + pos, v, fn, ctx);
        pos += v;
        if (pos < len) {
            fn(ctx, text + pos, 1); /* an invalid byte: a piece of its own */
            pos++;
        }
    }
}
