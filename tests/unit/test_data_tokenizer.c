/* test_data_tokenizer.c: byte-level BPE (data/tokenizer.h): exact ids against a tokenizer
 * trained by Hugging Face tokenizers (tests/fixtures/tokenizer_tiny.json, ids from
 * tests/fixtures/tokenizer_tiny.py), round trips of fixed strings, mixed scripts, emoji,
 * invalid UTF-8 and random bytes, special tokens, parallel encoding and cut points, the
 * trainer (merge order, determinism, save/load), SHA-256, and the exact one-line messages for
 * malformed tokenizer.json. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "tok_internal.h"
#include "tokenizer.h"

#define FIXTURE "tests/fixtures/tokenizer_tiny.json"

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int ids_equal(const qtx_ids *a, const uint32_t *b, size_t n) {
    return a->n == n && (n == 0 || !memcmp(a->v, b, n * sizeof *b));
}

static void show_ids(const char *what, const qtx_ids *a) {
    fprintf(stderr, "  %s (%zu):", what, a->n);
    for (size_t i = 0; i < a->n && i < 40; i++) fprintf(stderr, " %u", a->v[i]);
    fputc('\n', stderr);
}

/* encode then decode gives the bytes back */
static int round_trips(qtx_encoder *enc, const qtx_tokenizer *t, const char *s, size_t n) {
    qtx_ids ids = {0};
    qtx_bytes out = {0};
    qtx_encode(enc, s, n, &ids);
    qtx_err e = {0};
    int ok = qtx_decode(t, ids.v, ids.n, &out, &e) == 0 && out.n == n &&
             (n == 0 || !memcmp(out.p, s, n));
    qtx_ids_free(&ids);
    qtx_bytes_free(&out);
    return ok;
}

/* ---- the Hugging Face fixture ---------------------------------------------------------- */

static void test_fixture_ids(void) {
    qtx_tokenizer *t = NULL;
    qtx_err e = {0};
    T_CHECK(qtx_tokenizer_load(FIXTURE, &t, &e) == 0, "%s", e.msg);
    if (!t) return;
    T_CHECK(qtx_tokenizer_vocab_size(t) == 300, "vocab %lld",
            (long long)qtx_tokenizer_vocab_size(t));
    T_CHECK(qtx_tokenizer_eos_id(t) == 0, "eos %lld", (long long)qtx_tokenizer_eos_id(t));
    T_CHECK(qtx_tokenizer_n_merges(t) == 43, "merges %lld", (long long)qtx_tokenizer_n_merges(t));
    char hex[65];
    T_CHECK(qtx_sha256_file(FIXTURE, hex, &e) == 0, "%s", e.msg);
    T_STREQ(qtx_tokenizer_hash(t), hex);

    /* ids printed by tests/fixtures/tokenizer_tiny.py (Hugging Face tokenizers 0.20.3) */
    static const uint32_t ids0[] = {269, 221, 81, 85,  271, 75, 221, 66, 82,
                                    79,  87,  78, 221, 70,  79, 88,  14};
    static const uint32_t ids1[] = {41,  84,  290, 221, 296, 20,  12,  221, 73,  83, 78,
                                    291, 221, 73,  84,  31,  221, 221, 57,  264, 1,  199};
    static const uint32_t ids2[] = {78,  65, 128, 108, 265, 221, 67,  65,  70,  128, 103, 221, 163,
                                    246, 99, 163, 251, 106, 165, 104, 253, 221, 278, 237, 232};
    static const uint32_t ids3[] = {65, 0, 66};
    struct {
        const char *s;
        const uint32_t *ids;
        size_t n;
    } cases[] = {
        {"The quick brown fox.", ids0, sizeof ids0 / 4},
        {"It's 2024, isn't it?  Yes!\n", ids1, sizeof ids1 / 4},
        {"na\xc3\xafve caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\x89", ids2,
         sizeof ids2 / 4},
        {"a<|endoftext|>b", ids3, sizeof ids3 / 4},
    };
    qtx_encoder *enc = qtx_encoder_new(t);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qtx_ids ids = {0};
        qtx_encode(enc, cases[i].s, strlen(cases[i].s), &ids);
        int ok = ids_equal(&ids, cases[i].ids, cases[i].n);
        T_CHECK(ok, "fixture ids differ for case %zu", i);
        if (!ok) show_ids("got", &ids);
        /* again: now from the piece cache */
        ids.n = 0;
        qtx_encode(enc, cases[i].s, strlen(cases[i].s), &ids);
        T_CHECK(ids_equal(&ids, cases[i].ids, cases[i].n), "cached ids differ for case %zu", i);
        T_CHECK(round_trips(enc, t, cases[i].s, strlen(cases[i].s)), "round trip case %zu", i);
        qtx_ids_free(&ids);
    }
    /* save in our layout (merges as "a b"), load again: same ids, same bytes when saved twice */
    char p1[] = "/tmp/qtx_tok_fixture_XXXXXX";
    int fd = mkstemp(p1);
    close(fd);
    T_CHECK(qtx_tokenizer_save(t, p1, &e) == 0, "%s", e.msg);
    qtx_tokenizer *t2 = NULL;
    T_CHECK(qtx_tokenizer_load(p1, &t2, &e) == 0, "%s", e.msg);
    if (t2) {
        qtx_encoder *enc2 = qtx_encoder_new(t2);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            qtx_ids ids = {0};
            qtx_encode(enc2, cases[i].s, strlen(cases[i].s), &ids);
            T_CHECK(ids_equal(&ids, cases[i].ids, cases[i].n), "reloaded ids differ, case %zu", i);
            qtx_ids_free(&ids);
        }
        T_STREQ(qtx_tokenizer_hash(t2), qtx_tokenizer_hash(t));
        qtx_encoder_free(enc2);
        qtx_tokenizer_free(t2);
    }
    unlink(p1);
    qtx_encoder_free(enc);
    qtx_tokenizer_free(t);
}

/* ---- a tokenizer trained here ---------------------------------------------------------- */

static const char NUL_SAMPLE[] = "nul\0byte and \x7f del";
static const char *SAMPLES[] = {
    "",
    "a",
    " ",
    "Hello, world! It's a test: we'll see what they've done.",
    "  leading and trailing spaces  ",
    "tabs\tand\nnew\r\nlines\n\n\n",
    "numbers 1234567890 3.14159 -42 1e10",
    "\xc3\x9c"
    "ber na\xc3\xafve caf\xc3\xa9 \xc3\x85ngstr\xc3\xb6m",                       /* Latin-1 range */
    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80", /* Cyrillic */
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9"
    "\xe3\x83\x88 \xe4\xb8\xad\xe6\x96\x87", /* CJK */
    "\xf0\x9f\x8e\x89\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91"
    "\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 \xf0\x9f\x87\xab\xf0\x9f\x87\xb7", /* emoji, ZWJ */
    "\xd8\xa7\xd9\x84\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a\xd8\xa9 \xd7\xa2\xd7\x91\xd7\xa8\xd7\x99"
    "\xd7\xaa \xe0\xa4\xb9\xe0\xa4\xbf\xe0\xa4\xa8\xe0\xa5\x8d\xe0\xa4\xa6\xe0\xa5\x80", /* RTL */
    "\xff\xfe invalid \xc0\xaf overlong \xed\xa0\x80 surrogate \xf4\x90\x80\x80 too big",
    "truncated \xe2\x82 and \xf0\x9f\x8e end\xe2",
    "\x80\x81\x82 stray continuation bytes \xbf",
    NUL_SAMPLE,
    "<|endoftext|>",
    "text<|endoftext|>more<|endoftext|><|endoftext|>",
    "<|endoftext <|endoftext|| |endoftext|> <|",
    "\xc2\x85nel\xc2\xa0nbsp\xe1\xa0\x8emvs\xe3\x80\x80ideographic\xe2\x80\xa8ls",
};
#define N_SAMPLES (sizeof SAMPLES / sizeof SAMPLES[0])
static size_t sample_len(size_t i) {
    return SAMPLES[i] == NUL_SAMPLE ? sizeof NUL_SAMPLE - 1 : strlen(SAMPLES[i]);
}

/* Training text: the samples and generated words, so merges cover many scripts. */
static void training_text(qtx_bytes *b, size_t n_bytes) {
    static const char *words[] = {"the ",
                                  "quick ",
                                  "brown ",
                                  "fox ",
                                  "it's ",
                                  "we'll ",
                                  "\xe6\x97\xa5\xe6\x9c\xac ",
                                  "\xd0\xbc\xd0\xb8\xd1\x80 ",
                                  "\xf0\x9f\x8e\x89",
                                  "123 ",
                                  "  ",
                                  "\n",
                                  "caf\xc3\xa9 ",
                                  "<|endoftext|>",
                                  "!!! ",
                                  "don't "};
    for (size_t i = 0; i < N_SAMPLES; i++) qtx_bytes_append(b, SAMPLES[i], sample_len(i));
    while (b->n < n_bytes) {
        if (rnd() % 2) {
            const char *w = words[rnd() % (sizeof words / sizeof words[0])];
            qtx_bytes_append(b, w, strlen(w));
        } else { /* a made-up word, so there is always more to merge */
            char w[10];
            int n = 1 + (int)(rnd() % 8);
            for (int i = 0; i < n; i++) w[i] = (char)('a' + rnd() % 12);
            w[n] = ' ';
            qtx_bytes_append(b, w, (size_t)n + 1);
        }
    }
}

static qtx_tokenizer *train(const char *text, size_t n, int64_t vocab, int threads,
                            int64_t min_freq) {
    qtx_bpe_train_options o = {
        .vocab_size = vocab, .min_frequency = min_freq, .n_threads = threads};
    qtx_bpe_trainer *tr = NULL;
    qtx_err e = {0};
    T_CHECK(qtx_bpe_trainer_new(&o, &tr, &e) == 0, "%s", e.msg);
    if (!tr) return NULL;
    const char *texts[1] = {text};
    size_t lens[1] = {n};
    qtx_bpe_trainer_feed(tr, texts, lens, 1);
    qtx_tokenizer *t = NULL;
    T_CHECK(qtx_bpe_trainer_finish(tr, &t, &e) == 0, "%s", e.msg);
    qtx_bpe_trainer_free(tr);
    return t;
}

static void test_round_trips(void) {
    qtx_bytes text = {0};
    training_text(&text, 200000);
    qtx_tokenizer *t = train(text.p, text.n, 600, 2, 2);
    if (!t) return;
    T_CHECK(qtx_tokenizer_vocab_size(t) == 600, "vocab %lld",
            (long long)qtx_tokenizer_vocab_size(t));
    T_CHECK(qtx_tokenizer_eos_id(t) == 599, "eos %lld", (long long)qtx_tokenizer_eos_id(t));
    qtx_encoder *enc = qtx_encoder_new(t);
    for (size_t i = 0; i < N_SAMPLES; i++)
        T_CHECK(round_trips(enc, t, SAMPLES[i], sample_len(i)), "sample %zu does not round-trip",
                i);
    /* random bytes of every length up to 300, and a few long ones */
    for (int len = 0; len <= 300; len++) {
        char buf[300];
        for (int k = 0; k < len; k++) buf[k] = (char)rnd();
        T_CHECK(round_trips(enc, t, buf, (size_t)len), "random bytes, length %d", len);
    }
    for (int rep = 0; rep < 20; rep++) {
        size_t len = 1000 + rnd() % 50000;
        char *buf = qtx_malloc(len);
        /* biased towards ASCII, spaces and UTF-8 lead/continuation bytes */
        static const char alphabet[] =
            "ab c'sdt \n\t\xc3\xa9\xe6\x97\xa5\xf0\x9f\x8e\x89\x80\xff<|>";
        for (size_t k = 0; k < len; k++)
            buf[k] = rnd() % 4 ? alphabet[rnd() % (sizeof alphabet - 1)] : (char)rnd();
        T_CHECK(round_trips(enc, t, buf, len), "random text %d", rep);
        free(buf);
    }

    /* special tokens: exactly their id; no partial matches */
    qtx_ids ids = {0};
    qtx_encode(enc, "<|endoftext|>", 13, &ids);
    T_CHECK(ids.n == 1 && ids.v[0] == 599, "<|endoftext|> alone");
    ids.n = 0;
    qtx_encode(enc, "x<|endoftext|><|endoftext|>y", 28, &ids);
    int n_eos = 0;
    for (size_t i = 0; i < ids.n; i++) n_eos += ids.v[i] == 599;
    T_CHECK(n_eos == 2 && ids.v[ids.n - 1] != 599 && ids.v[0] != 599, "two EOS in the middle");
    ids.n = 0;
    qtx_encode(enc, "<|endoftext|", 12, &ids);
    for (size_t i = 0; i < ids.n; i++) T_CHECK(ids.v[i] != 599, "partial special token matched");

    /* invalid UTF-8 bytes are pieces of their own: one byte token each (id = byte) */
    ids.n = 0;
    qtx_encode(enc, "\xff\xfe\xc0", 3, &ids);
    T_CHECK(ids.n == 3 && ids.v[0] == 0xff && ids.v[1] == 0xfe && ids.v[2] == 0xc0,
            "invalid bytes -> byte tokens");
    qtx_ids_free(&ids);
    qtx_encoder_free(enc);
    qtx_tokenizer_free(t);
    qtx_bytes_free(&text);
}

/* Parallel encoding and cut points give the ids of the whole. */
static void test_parallel(void) {
    qtx_bytes text = {0};
    training_text(&text, 3500000);
    qtx_tokenizer *t = train(text.p, text.n, 1000, 2, 2);
    if (!t) return;
    qtx_encoder *encs[2] = {qtx_encoder_new(t), qtx_encoder_new(t)};
    qtx_ids whole = {0}, par = {0};
    qtx_encode(encs[0], text.p, text.n, &whole);
    qtx_encode_parallel(encs, 2, text.p, text.n, &par);
    T_CHECK(whole.n == par.n && !memcmp(whole.v, par.v, whole.n * 4),
            "parallel encoding differs (%zu vs %zu ids)", whole.n, par.n);
    /* cut points on a short text */
    const char *s = "one two<|endoftext|>three four five's six  seven\n eight nine";
    size_t n = strlen(s);
    qtx_ids ref = {0};
    qtx_encode(encs[0], s, n, &ref);
    for (size_t from = 0; from <= n; from++) {
        size_t k = qtx_tokenizer_split_point(t, s, n, from);
        T_CHECK(k >= from && k <= n, "cut %zu from %zu", k, from);
        qtx_ids two = {0};
        qtx_encode(encs[0], s, k, &two);
        qtx_encode(encs[1], s + k, n - k, &two);
        T_CHECK(two.n == ref.n && !memcmp(two.v, ref.v, ref.n * 4), "cut at %zu changes ids", k);
        qtx_ids_free(&two);
    }
    /* an added token straddling a would-be cut: "<|end oftext|>"-like tokens are not cut */
    T_CHECK(qtx_tokenizer_split_point(t, "ab cd", 5, 0) == 2, "simple cut");
    qtx_ids_free(&ref);
    qtx_ids_free(&whole);
    qtx_ids_free(&par);
    qtx_encoder_free(encs[0]);
    qtx_encoder_free(encs[1]);
    qtx_tokenizer_free(t);
    qtx_bytes_free(&text);
}

/* ---- the trainer ----------------------------------------------------------------------- */

static void expect_token(const qtx_tokenizer *t, uint32_t id, const char *bytes) {
    size_t n = 0;
    const char *s = qtx_tokenizer_token_bytes(t, id, &n);
    T_CHECK(s && n == strlen(bytes) && !memcmp(s, bytes, n), "token %u is not \"%s\"", id, bytes);
}

static void test_trainer(void) {
    /* words: "ab" x1, " ab" x2, " cd" x2 -> pairs (a,b) 3, then ties broken by smallest ids */
    const char *s = "ab ab ab cd cd";
    qtx_tokenizer *t = train(s, strlen(s), 261, 1, 2);
    if (!t) return;
    T_CHECK(qtx_tokenizer_n_merges(t) == 4, "merges %lld", (long long)qtx_tokenizer_n_merges(t));
    expect_token(t, 256, "ab");
    expect_token(t, 257, " c");
    expect_token(t, 258, " ab");
    expect_token(t, 259, " cd");
    expect_token(t, 260, "<|endoftext|>");
    qtx_encoder *enc = qtx_encoder_new(t);
    qtx_ids ids = {0};
    qtx_encode(enc, "ab cd ab", 8, &ids);
    static const uint32_t want[] = {256, 259, 258};
    T_CHECK(ids_equal(&ids, want, 3), "encode with the trained merges");
    qtx_ids_free(&ids);
    qtx_encoder_free(enc);
    qtx_tokenizer_free(t);

    /* min_frequency stops early; vocabulary then smaller than asked */
    t = train(s, strlen(s), 1000, 1, 3);
    if (t) {
        T_CHECK(qtx_tokenizer_n_merges(t) == 1, "min_frequency 3: %lld merges",
                (long long)qtx_tokenizer_n_merges(t));
        qtx_tokenizer_free(t);
    }

    /* determinism: 1 and 2 threads, saved twice -> the same file bytes */
    qtx_bytes text = {0};
    training_text(&text, 300000);
    char hashes[2][65];
    for (int threads = 1; threads <= 2; threads++) {
        qtx_tokenizer *tt = train(text.p, text.n, 700, threads, 2);
        if (!tt) continue;
        char p[] = "/tmp/qtx_tok_train_XXXXXX";
        int fd = mkstemp(p);
        close(fd);
        qtx_err e = {0};
        T_CHECK(qtx_tokenizer_save(tt, p, &e) == 0, "%s", e.msg);
        snprintf(hashes[threads - 1], 65, "%s", qtx_tokenizer_hash(tt));
        qtx_tokenizer *back = NULL;
        T_CHECK(qtx_tokenizer_load(p, &back, &e) == 0, "%s", e.msg);
        if (back) {
            T_STREQ(qtx_tokenizer_hash(back), qtx_tokenizer_hash(tt));
            T_CHECK(qtx_tokenizer_vocab_size(back) == 700, "reloaded vocab");
            qtx_tokenizer_free(back);
        }
        unlink(p);
        qtx_tokenizer_free(tt);
    }
    T_STREQ(hashes[0], hashes[1]);
    qtx_bytes_free(&text);

    /* bad options */
    qtx_bpe_train_options o = {.vocab_size = 256, .n_threads = 1};
    qtx_bpe_trainer *tr = NULL;
    qtx_err e = {0};
    T_CHECK(qtx_bpe_trainer_new(&o, &tr, &e) == QTX_ERR_INPUT, "vocab 256 accepted");
    T_STREQ(e.msg, "vocabulary size 256 must be at least 257 (256 bytes + 1 special tokens) and "
                   "at most 2^31");
    const char *bad_special[] = {""};
    o = (qtx_bpe_train_options){
        .vocab_size = 300, .n_threads = 1, .special = bad_special, .n_special = 1};
    T_CHECK(qtx_bpe_trainer_new(&o, &tr, &e) == QTX_ERR_INPUT, "empty special accepted");
    T_STREQ(e.msg, "special token 1 is empty or not valid UTF-8");
}

/* ---- SHA-256 and the byte mapping ------------------------------------------------------ */

static void sha_hex(const char *s, size_t n, char out[65]) {
    qtx_sha256 h;
    qtx_sha256_init(&h);
    qtx_sha256_update(&h, s, n);
    qtx_sha256_hex(&h, out);
}

static void test_sha256_and_bytes(void) {
    char hex[65];
    sha_hex("", 0, hex);
    T_STREQ(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_hex("abc", 3, hex);
    T_STREQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(two, strlen(two), hex);
    T_STREQ(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* a million 'a', fed in odd-sized pieces */
    qtx_sha256 h;
    qtx_sha256_init(&h);
    char a[997];
    memset(a, 'a', sizeof a);
    size_t left = 1000000;
    while (left) {
        size_t k = left < sizeof a ? left : sizeof a;
        qtx_sha256_update(&h, a, k);
        left -= k;
    }
    qtx_sha256_hex(&h, hex);
    T_STREQ(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    /* GPT-2's mapping: a bijection; space is U+0120 'Ġ', newline U+010A 'Ċ', 'a' itself */
    int seen[324] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t cp = qtx_byte_to_cp((uint8_t)b);
        T_CHECK(cp < 324 && !seen[cp] && qtx_cp_to_byte(cp) == b, "byte %d", b);
        if (cp < 324) seen[cp] = 1;
    }
    T_CHECK(qtx_byte_to_cp(' ') == 0x120 && qtx_byte_to_cp('\n') == 0x10A &&
                qtx_byte_to_cp('a') == 'a' && qtx_byte_to_cp(173) == 0x143,
            "known mapped code points");
    uint8_t out[8];
    T_CHECK(qtx_bytelevel_decode("\xc4\xa0the", 5, out) == 4 && !memcmp(out, " the", 4),
            "decode Ġthe");
    T_CHECK(qtx_bytelevel_decode("\xe2\x82\xac", 3, out) == -1, "euro sign is not byte-level");
}

/* ---- malformed tokenizer.json ---------------------------------------------------------- */

#define PRE "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}"
#define VOCAB "\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}"

static void expect_error(const char *json, const char *msg) {
    qtx_tokenizer *t = NULL;
    qtx_err e = {0};
    int rc = qtx_tokenizer_parse(json, strlen(json), "bad.json", &t, &e);
    T_CHECK(rc == QTX_ERR_INPUT && !t, "accepted: %s", json);
    if (rc == QTX_ERR_INPUT) T_STREQ(e.msg, msg);
    qtx_tokenizer_free(t);
}

static void test_malformed(void) {
    /* the smallest valid file first */
    const char *ok = "{" PRE ", \"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": [\"a b\"]}}";
    qtx_tokenizer *t = NULL;
    qtx_err e = {0};
    T_CHECK(qtx_tokenizer_parse(ok, strlen(ok), "ok.json", &t, &e) == 0, "%s", e.msg);
    if (t) {
        T_CHECK(qtx_tokenizer_eos_id(t) == -1 && qtx_tokenizer_vocab_size(t) == 3, "minimal");
        qtx_tokenizer_free(t);
    }

    expect_error("", "bad.json: invalid JSON near line 1, column 1");
    expect_error("{\n  \"model\": {\n    \"vocab\": {\"a\": 0,}\n",
                 "bad.json: invalid JSON near line 3, column 23");
    expect_error("{} x", "bad.json: invalid JSON near line 1, column 4 (text after the end)");
    expect_error("[]", "bad.json: not a tokenizer.json (the top level is not an object)");
    expect_error("{}", "bad.json: no \"model\" object");
    expect_error("{\"model\": {}}", "bad.json: model.vocab is missing or not an object");
    expect_error("{\"model\": {" VOCAB "}}", "bad.json: model.merges is missing or not an array");
    expect_error("{\"model\": {" VOCAB ", \"merges\": []}}",
                 "bad.json: no pre_tokenizer; expected ByteLevel");
    expect_error("{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {" VOCAB
                 ", \"merges\": []}}",
                 "bad.json: pre_tokenizer must be {\"type\": \"ByteLevel\", ...}; only GPT-2 "
                 "byte-level BPE is supported");
    expect_error("{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true}, "
                 "\"model\": {" VOCAB ", \"merges\": []}}",
                 "bad.json: pre_tokenizer.add_prefix_space true is not supported; set it to false");
    expect_error("{\"normalizer\": {\"type\": \"NFC\"}, " PRE ", \"model\": {" VOCAB
                 ", \"merges\": []}}",
                 "bad.json: a normalizer is not supported; set it to null");
    expect_error("{" PRE ", \"decoder\": {\"type\": \"WordPiece\"}, \"model\": {" VOCAB
                 ", \"merges\": []}}",
                 "bad.json: decoder must be null or ByteLevel; other kinds are not supported");
    expect_error("{" PRE ", \"model\": {\"type\": \"WordPiece\", " VOCAB ", \"merges\": []}}",
                 "bad.json: model.type must be \"BPE\"");
    expect_error("{" PRE ", \"model\": {\"dropout\": 0.1, " VOCAB ", \"merges\": []}}",
                 "bad.json: model.dropout is not supported; set it to null");
    expect_error("{" PRE ", \"model\": {\"vocab\": {\"a\": -1}, \"merges\": []}}",
                 "bad.json: model.vocab[\"a\"]: the id must be an integer in [0, 2^31)");
    expect_error("{" PRE ", \"model\": {\"vocab\": {\"a\": 1.5}, \"merges\": []}}",
                 "bad.json: model.vocab[\"a\"]: the id must be an integer in [0, 2^31)");
    expect_error("{" PRE ", \"model\": {\"vocab\": {\"a\": \"0\"}, \"merges\": []}}",
                 "bad.json: model.vocab[\"a\"]: the id must be an integer in [0, 2^31)");
    expect_error("{" PRE ", \"model\": {\"vocab\": {}, \"merges\": []}}",
                 "bad.json: model.vocab is empty");
    expect_error("{" PRE ", \"model\": {\"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}",
                 "bad.json: model.vocab: id 0 is given to both \"a\" and \"b\"");
    expect_error("{" PRE
                 ", \"model\": {\"vocab\": {\"a\": 0, \"\xe2\x82\xac\": 1}, \"merges\": []}}",
                 "bad.json: model.vocab[\"\xe2\x82\xac\"]: not a byte-level token (it has "
                 "characters outside GPT-2's byte alphabet)");
    expect_error("{" PRE ", \"model\": {" VOCAB ", \"merges\": [\"ab\"]}}",
                 "bad.json: model.merges[0]: expected \"left right\" or [\"left\", \"right\"]");
    expect_error("{" PRE ", \"model\": {" VOCAB ", \"merges\": [\"a b\", [\"a\"]]}}",
                 "bad.json: model.merges[1]: expected \"left right\" or [\"left\", \"right\"]");
    expect_error("{" PRE ", \"model\": {" VOCAB ", \"merges\": [\"a c\"]}}",
                 "bad.json: model.merges[0]: \"c\" is not in model.vocab");
    expect_error("{" PRE ", \"model\": {" VOCAB ", \"merges\": [[\"b\", \"a\"]]}}",
                 "bad.json: model.merges[0]: the merged token \"ba\" is not in model.vocab");
    expect_error("{\"added_tokens\": [{\"id\": 3}], " PRE ", \"model\": {" VOCAB
                 ", \"merges\": []}}",
                 "bad.json: added_tokens[0]: expected {\"id\": integer, \"content\": non-empty "
                 "string, ...}");
    expect_error("{\"added_tokens\": [{\"id\": 3, \"content\": \"<|x|>\", \"lstrip\": true}], " PRE
                 ", \"model\": {" VOCAB ", \"merges\": []}}",
                 "bad.json: added_tokens[0] (\"<|x|>\"): lstrip true is not supported");
    expect_error("{\"added_tokens\": [{\"id\": 3, \"content\": \"x\"}, {\"id\": 3, \"content\": "
                 "\"y\"}], " PRE ", \"model\": {" VOCAB ", \"merges\": []}}",
                 "bad.json: added_tokens[1] (\"y\"): id 3 is used twice");
    expect_error("{\"truncation\": {\"max_length\": 5}, " PRE ", \"model\": {" VOCAB
                 ", \"merges\": []}}",
                 "bad.json: truncation is not supported; set it to null");

    /* a missing file names itself */
    T_CHECK(qtx_tokenizer_load("tests/fixtures/no_such_tokenizer.json", &t, &e) == QTX_ERR_INPUT,
            "missing file");
    T_STREQ(e.msg, "tests/fixtures/no_such_tokenizer.json: cannot open: No such file or directory");

    /* decode: an id without a token */
    T_CHECK(qtx_tokenizer_parse(ok, strlen(ok), "ok.json", &t, &e) == 0, "%s", e.msg);
    if (t) {
        uint32_t ids[] = {0, 7};
        qtx_bytes out = {0};
        T_CHECK(qtx_decode(t, ids, 2, &out, &e) == QTX_ERR_INPUT, "decode of id 7");
        T_STREQ(e.msg, "token id 7 (position 1) is not in the vocabulary of ok.json (size 3)");
        qtx_bytes_free(&out);
        qtx_tokenizer_free(t);
    }
}

int main(void) {
    test_sha256_and_bytes();
    test_fixture_ids();
    test_round_trips();
    test_parallel();
    test_trainer();
    test_malformed();
    return qtx_test_done("test_data_tokenizer");
}
