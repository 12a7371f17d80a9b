/* test_ckpt_store.c: the checkpoint store (ckpt/ckpt_store.h, docs/FORMATS.md): four
 * simulated ranks (tp = 2 column split x dp = 2 uneven ZeRO ranges, plus a replicated 1-D
 * tensor) write, publish, and are read back under other layouts exactly; publish, latest,
 * prune and resolve; and every kind of damaged checkpoint with its exact message. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cjson/cJSON.h>

#include "ckpt_store.h"
#include "testutil.h"

#define FIX "use another checkpoint (qtx ckpt verify checks one)"
#define R 12
#define C 10
#define NB 10 /* the 1-D tensor */

static char g_tmp[256];  /* mkdtemp under /tmp */
static char g_root[512]; /* g_tmp/out/ckpt: the checkpoint root */

enum { K_PARAM, K_M, K_V };
static const char *KINDS[] = {"param", "adam_m", "adam_v"};

/* Every stored element is a function of (kind, tensor, global row, global column), exact in
 * float32. Tensor 0 is blk.0.attn_q [12, 10], tensor 1 output_norm [10]. */
static float value(int kind, int tensor, int64_t r, int64_t c) {
    return (float)(kind * 100000 + tensor * 10000 + r * 100 + c) + 0.5f;
}

/* Elements [f0, f1) of block b of (kind, tensor). */
static float *fill(int kind, int tensor, const int64_t b[4], int64_t f0, int64_t f1) {
    float *x = malloc((size_t)(f1 > f0 ? f1 - f0 : 1) * sizeof *x);
    for (int64_t i = f0; i < f1; i++)
        x[i - f0] = value(kind, tensor, b[0] + i / b[3], b[1] + i % b[3]);
    return x;
}

static qtx_ckpt_piece piece(int kind, int tensor, int64_t r0, int64_t c0, int64_t nr, int64_t nc,
                            int64_t f0, int64_t f1) {
    qtx_ckpt_piece p;
    memset(&p, 0, sizeof p);
    snprintf(p.kind, sizeof p.kind, "%s", KINDS[kind]);
    snprintf(p.name, sizeof p.name, "%s", tensor == 0 ? "blk.0.attn_q" : "output_norm");
    p.shape[0] = tensor == 0 ? R : NB;
    p.shape[1] = tensor == 0 ? C : 1;
    p.block[0] = r0, p.block[1] = c0, p.block[2] = nr, p.block[3] = nc;
    p.flat[0] = f0, p.flat[1] = f1;
    return p;
}

static int write_p(qtx_ckpt_writer *w, const qtx_ckpt_piece *p, int kind, int tensor) {
    float *x = fill(kind, tensor, p->block, p->flat[0], p->flat[1]);
    qtx_err e = {0};
    int rc = qtx_ckpt_write_piece(w, p, x, &e);
    T_CHECK(rc == 0, "write_piece: %s", e.msg);
    free(x);
    return rc;
}

/* The four ranks of a tp = 2 (column split) x dp = 2 run: rank = 2 dp + tp. Params are whole
 * TP blocks (replicated over dp); Adam moments are ZeRO ranges [0, 37) and [37, 60) of the
 * 60-element block; output_norm is replicated on all. hole: rank 3 saves no adam_m (it
 * writes an empty piece instead), so [37, 60) of the second block is held by nobody. */
static void write_ranks(const char *dir, int hole) {
    for (int rank = 0; rank < 4; rank++) {
        int t = rank % 2, d = rank / 2;
        int64_t f0 = d ? 37 : 0, f1 = d ? 60 : 37;
        qtx_ckpt_writer *w;
        qtx_err e = {0};
        T_CHECK(qtx_ckpt_writer_open(&w, dir, rank, &e) == 0, "writer_open: %s", e.msg);
        if (!w) return;
        qtx_ckpt_piece p = piece(K_PARAM, 0, 0, 5 * t, R, 5, 0, 60);
        write_p(w, &p, K_PARAM, 0);
        p = piece(K_M, 0, 0, 5 * t, R, 5, f0, f1);
        if (hole && rank == 3) p.flat[0] = p.flat[1] = 60;
        write_p(w, &p, K_M, 0);
        p = piece(K_V, 0, 0, 5 * t, R, 5, f0, f1);
        write_p(w, &p, K_V, 0);
        p = piece(K_PARAM, 1, 0, 0, NB, 1, 0, NB);
        write_p(w, &p, K_PARAM, 1);
        T_CHECK(qtx_ckpt_writer_close(w, &e) == 0, "writer_close: %s", e.msg);
    }
}

static void path2(char *out, size_t n, const char *a, const char *b) {
    if (snprintf(out, n, "%s/%s", a, b) >= (int)n) abort();
}

/* Writes, manifests and publishes a checkpoint of `step` under g_root. */
static void save(int step, int hole) {
    char tmp[600], fin[600];
    snprintf(tmp, sizeof tmp, "%s/.tmp_step_%08d", g_root, step);
    snprintf(fin, sizeof fin, "%s/step_%08d", g_root, step);
    T_CHECK(mkdir(tmp, 0777) == 0, "mkdir %s", tmp);
    write_ranks(tmp, hole);
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddNumberToObject(meta, "step", step);
    cJSON *model = cJSON_AddObjectToObject(meta, "model");
    cJSON_AddNumberToObject(model, "n_layer", 1);
    cJSON_AddStringToObject(meta, "format", "overridden by the store");
    qtx_err e = {0};
    T_CHECK(qtx_ckpt_write_manifest(tmp, 4, meta, &e) == 0, "manifest: %s", e.msg);
    cJSON_Delete(meta);
    T_CHECK(qtx_ckpt_publish(tmp, fin, &e) == 0, "publish: %s", e.msg);
}

static char *slurp(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    b[n] = 0;
    fclose(f);
    if (len) *len = n;
    return b;
}

static void spit(const char *path, const char *buf, long n) {
    FILE *f = fopen(path, "wb");
    T_CHECK(f && fwrite(buf, 1, (size_t)n, f) == (size_t)n, "writing %s", path);
    if (f) fclose(f);
}

static uint32_t crc_of(const void *p, long n) {
    return (uint32_t)crc32(0, (const Bytef *)p, (uInt)n);
}

static uint32_t crc_file(const char *path) {
    long n;
    char *b = slurp(path, &n);
    uint32_t c = crc_of(b, n);
    free(b);
    return c;
}

/* Flips one bit of byte `at` of dir/name. */
static void flip(const char *dir, const char *name, long at) {
    char p[700];
    path2(p, sizeof p, dir, name);
    long n;
    char *b = slurp(p, &n);
    T_CHECK(b && at < n, "flip %s at %ld", p, at);
    if (!b) return;
    b[at] ^= 0x04;
    spit(p, b, n);
    free(b);
}

/* Copies the flat directory src to dst (a fresh case directory). */
static void copy_dir(const char *src, const char *dst) {
    static const char *names[] = {"manifest.json",   "manifest.crc32",  "rank_00000.bin",
                                  "rank_00000.json", "rank_00001.bin",  "rank_00001.json",
                                  "rank_00002.bin",  "rank_00002.json", "rank_00003.bin",
                                  "rank_00003.json"};
    mkdir(dst, 0777);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char a[700], b[700];
        path2(a, sizeof a, src, names[i]);
        path2(b, sizeof b, dst, names[i]);
        long n;
        char *buf = slurp(a, &n);
        T_CHECK(buf != NULL, "reading %s", a);
        if (buf) spit(b, buf, n);
        free(buf);
    }
}

/* Rewrites dir/manifest.crc32 for the current manifest.json. */
static void fix_manifest_crc(const char *dir) {
    char p[700], line[64];
    path2(p, sizeof p, dir, "manifest.json");
    int n = snprintf(line, sizeof line, "%08" PRIx32 "  manifest.json\n", crc_file(p));
    path2(p, sizeof p, dir, "manifest.crc32");
    spit(p, line, n);
}

/* Replaces `from` by `to` in dir/name, then makes the manifest's CRC of that file and the
 * manifest's own CRC match again: a consistently written but malformed checkpoint. */
static void edit_consistently(const char *dir, const char *name, const char *from, const char *to) {
    char p[700];
    path2(p, sizeof p, dir, name);
    long n;
    char *b = slurp(p, &n);
    char *at = b ? strstr(b, from) : NULL;
    T_CHECK(at != NULL, "'%s' not in %s", from, p);
    if (!at) {
        free(b);
        return;
    }
    size_t lf = strlen(from), lt = strlen(to);
    char *o = malloc((size_t)n + lt + 1);
    size_t pre = (size_t)(at - b);
    memcpy(o, b, pre);
    memcpy(o + pre, to, lt);
    memcpy(o + pre + lt, at + lf, (size_t)n - pre - lf);
    long m = n - (long)lf + (long)lt;
    spit(p, o, m);
    if (strcmp(name, "manifest.json")) {
        char mp[700];
        path2(mp, sizeof mp, dir, "manifest.json");
        char *mt = slurp(mp, NULL);
        cJSON *man = cJSON_Parse(mt);
        cJSON *f;
        cJSON_ArrayForEach(f, cJSON_GetObjectItem(man, "files")) {
            if (strcmp(cJSON_GetObjectItem(f, "name")->valuestring, name)) continue;
            cJSON_SetNumberValue(cJSON_GetObjectItem(f, "crc32"), (double)crc_of(o, m));
            cJSON_SetNumberValue(cJSON_GetObjectItem(f, "bytes"), (double)m);
        }
        char *txt = cJSON_Print(man);
        spit(mp, txt, (long)strlen(txt));
        free(txt);
        cJSON_Delete(man);
        free(mt);
    }
    fix_manifest_crc(dir);
    free(o);
    free(b);
}

static long file_size(const char *dir, const char *name) {
    char p[700];
    path2(p, sizeof p, dir, name);
    struct stat st;
    return stat(p, &st) ? -1 : (long)st.st_size;
}

static int exists_in(const char *dir, const char *name) {
    return file_size(dir, name) >= 0;
}

/* Opens dir and expects failure with exactly msg. */
static void expect_open_error(const char *dir, const char *msg) {
    qtx_ckpt_reader *r = NULL;
    qtx_err e = {0};
    int rc = qtx_ckpt_open(&r, dir, &e);
    T_CHECK(rc == QTX_ERR_INPUT && r == NULL, "open %s gave %d", dir, rc);
    T_STREQ(e.msg, msg);
    qtx_err v = {0};
    rc = qtx_ckpt_verify(dir, &v);
    T_CHECK(rc == QTX_ERR_INPUT, "verify %s gave %d", dir, rc);
    T_STREQ(v.msg, msg);
    qtx_ckpt_close(r);
}

/* Reads (kind, tensor) block b [f0, f1) and compares with the generated values exactly. */
static void expect_read(qtx_ckpt_reader *r, int kind, int tensor, int64_t r0, int64_t c0,
                        int64_t nr, int64_t nc, int64_t f0, int64_t f1) {
    qtx_ckpt_piece p = piece(kind, tensor, r0, c0, nr, nc, f0, f1);
    float *want = fill(kind, tensor, p.block, f0, f1);
    float *got = malloc((size_t)(f1 > f0 ? f1 - f0 : 1) * sizeof *got);
    memset(got, 0xff, (size_t)(f1 > f0 ? f1 - f0 : 1) * sizeof *got);
    qtx_err e = {0};
    int rc = qtx_ckpt_read(r, p.kind, p.name, p.shape, p.block, f0, f1, got, &e);
    T_CHECK(rc == 0,
            "read %s %s (%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ") [%" PRId64 ", %" PRId64
            "): %s",
            p.kind, p.name, r0, c0, nr, nc, f0, f1, e.msg);
    if (rc == 0)
        T_CHECK(memcmp(got, want, (size_t)(f1 - f0) * sizeof *got) == 0,
                "read %s %s (%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ") [%" PRId64
                ", %" PRId64 ") differs",
                p.kind, p.name, r0, c0, nr, nc, f0, f1);
    free(want);
    free(got);
}

static int read_err(qtx_ckpt_reader *r, qtx_ckpt_piece p, qtx_err *e) {
    int64_t n = p.flat[1] - p.flat[0];
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    int rc = qtx_ckpt_read(r, p.kind, p.name, p.shape, p.block, p.flat[0], p.flat[1], x, e);
    free(x);
    return rc;
}

static void test_round_trip(const char *dir) {
    qtx_ckpt_reader *r;
    qtx_err e = {0};
    T_CHECK(qtx_ckpt_open(&r, dir, &e) == 0, "open: %s", e.msg);
    if (!r) return;
    const cJSON *m = qtx_ckpt_meta(r);
    T_CHECK(cJSON_GetObjectItem(m, "step")->valuedouble == 10, "step");
    T_STREQ(cJSON_GetObjectItem(m, "format")->valuestring, "qtx-ckpt");
    T_CHECK(cJSON_GetObjectItem(m, "version")->valuedouble == 1, "version");
    T_CHECK(cJSON_GetObjectItem(m, "n_ranks")->valuedouble == 4, "n_ranks");
    T_CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(m, "files")) == 8, "8 files");
    T_CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "model"), "n_layer")->valuedouble == 1,
            "model meta");
    int64_t shape[2];
    T_CHECK(qtx_ckpt_has(r, "adam_v", "blk.0.attn_q", shape) && shape[0] == R && shape[1] == C,
            "has");
    T_CHECK(!qtx_ckpt_has(r, "adam_v", "output_norm", NULL), "has not");

    for (int k = 0; k < 3; k++) {
        /* tp = 1: the whole tensor; and as the saving layout did */
        expect_read(r, k, 0, 0, 0, R, C, 0, R * C);
        expect_read(r, k, 0, 0, 5, R, 5, 0, 60);
        expect_read(r, k, 0, 0, 0, R, 5, 37, 60);
        /* tp = 2 split by rows, whole and in odd ZeRO ranges */
        expect_read(r, k, 0, 0, 0, 6, C, 0, 60);
        expect_read(r, k, 0, 6, 0, 6, C, 0, 60);
        expect_read(r, k, 0, 6, 0, 6, C, 7, 53);
        expect_read(r, k, 0, 0, 0, 6, C, 59, 60);
        /* odd ranges of the whole tensor, a block straddling both column halves */
        expect_read(r, k, 0, 0, 0, R, C, 13, 97);
        expect_read(r, k, 0, 3, 2, 5, 7, 4, 31);
        expect_read(r, k, 0, 0, 0, R, C, 50, 50);
        /* tp = 3 by rows, dp = 3 by uneven ranges */
        for (int t = 0; t < 3; t++)
            for (int d = 0; d < 3; d++)
                expect_read(r, k, 0, 4 * t, 0, 4, C, d * 13, d == 2 ? 40 : (d + 1) * 13);
    }
    expect_read(r, K_PARAM, 1, 0, 0, NB, 1, 0, NB);
    expect_read(r, K_PARAM, 1, 0, 0, NB, 1, 3, 8);
    expect_read(r, K_PARAM, 1, 5, 0, 5, 1, 1, 5);

    /* a shape that is not the saved one, a tensor that is not there, a bad request */
    qtx_ckpt_piece p = piece(K_PARAM, 0, 0, 0, R, C + 1, 0, R * (C + 1));
    p.shape[1] = C + 1;
    T_CHECK(read_err(r, p, &e) == QTX_ERR_INPUT, "shape mismatch");
    char want[1200];
    snprintf(want, sizeof want,
             "checkpoint %s: param blk.0.attn_q has shape [12, 10], the model wants [12, 11]: it "
             "was saved from another model config",
             dir);
    T_STREQ(e.msg, want);
    p = piece(K_PARAM, 0, 0, 0, R, C, 0, R * C);
    snprintf(p.name, sizeof p.name, "blk.9.attn_q");
    T_CHECK(read_err(r, p, &e) == QTX_ERR_INPUT, "missing tensor");
    snprintf(
        want, sizeof want,
        "checkpoint %s has no param blk.9.attn_q: it was saved from another model or optimizer "
        "(qtx ckpt info %s lists its tensors)",
        dir, dir);
    T_STREQ(e.msg, want);
    p = piece(K_PARAM, 0, 0, 0, R, C, 0, R * C + 1);
    T_CHECK(read_err(r, p, &e) == QTX_ERR_INPUT, "flat past block");
    snprintf(want, sizeof want,
             "checkpoint %s: read of param blk.0.attn_q: flat range [0, 121) is outside its block "
             "of 120 elements",
             dir);
    T_STREQ(e.msg, want);
    p = piece(K_PARAM, 0, 8, 0, 5, C, 0, 50);
    T_CHECK(read_err(r, p, &e) == QTX_ERR_INPUT, "block past shape");
    snprintf(want, sizeof want,
             "checkpoint %s: read of param blk.0.attn_q: block (8, 0, 5, 10) is empty or outside "
             "shape [12, 10]",
             dir);
    T_STREQ(e.msg, want);
    qtx_ckpt_close(r);

    T_CHECK(qtx_ckpt_verify(dir, &e) == 0, "verify: %s", e.msg);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    T_CHECK(qtx_ckpt_info(dir, f, &e) == 0, "info: %s", e.msg);
    fclose(f);
    T_CHECK(strstr(text, "format       qtx-ckpt version 1\n") != NULL, "info format:\n%s", text);
    T_CHECK(strstr(text, "step         10\n") != NULL, "info step:\n%s", text);
    T_CHECK(strstr(text, "ranks        4\n") != NULL, "info ranks:\n%s", text);
    T_CHECK(strstr(text, "adam_m   blk.0.attn_q                     [12, 10]              4"
                         "            120\n") != NULL,
            "info tensor line:\n%s", text);
    T_CHECK(strstr(text, "param    output_norm                      [10, 1]               4"
                         "             40\n") != NULL,
            "info 1-D line:\n%s", text);
    free(text);
}

/* The data files and index are what FORMATS.md says: 64-byte aligned pieces, raw floats. */
static void test_layout_on_disk(const char *dir) {
    char p[700];
    path2(p, sizeof p, dir, "rank_00003.json");
    char *idx = slurp(p, NULL);
    cJSON *j = cJSON_Parse(idx);
    T_CHECK(j != NULL, "index parses");
    const cJSON *pieces = cJSON_GetObjectItem(j, "pieces");
    T_CHECK(cJSON_GetArraySize(pieces) == 4, "4 pieces");
    const cJSON *second = cJSON_GetArrayItem(pieces, 1);
    T_STREQ(cJSON_GetObjectItem(second, "kind")->valuestring, "adam_m");
    T_CHECK(cJSON_GetObjectItem(second, "offset")->valuedouble == 256, "aligned offset");
    T_CHECK(cJSON_GetObjectItem(second, "bytes")->valuedouble == 23 * 4, "bytes");
    path2(p, sizeof p, dir, "rank_00003.bin");
    long n;
    char *bin = slurp(p, &n);
    float x;
    memcpy(&x, bin + 256 + 4 * 2, sizeof x); /* element 39 of block (0, 5, 12, 5): row 7 col 9 */
    T_CHECK(x == value(K_M, 0, 7, 9), "raw float %g", (double)x);
    T_CHECK(cJSON_GetObjectItem(second, "crc32")->valuedouble == (double)crc_of(bin + 256, 23 * 4),
            "piece crc");
    free(bin);
    cJSON_Delete(j);
    free(idx);
}

static void test_publish_latest_resolve(const char *step10) {
    char latest[700], want[1200], out[1024];
    path2(latest, sizeof latest, g_root, "latest");
    char *s = slurp(latest, NULL);
    T_STREQ(s ? s : "", "step_00000010\n");
    free(s);

    /* publish never overwrites */
    char tmp[700];
    path2(tmp, sizeof tmp, g_root, ".tmp_again");
    mkdir(tmp, 0777);
    write_ranks(tmp, 0);
    qtx_err e = {0};
    T_CHECK(qtx_ckpt_write_manifest(tmp, 4, NULL, &e) == 0, "manifest: %s", e.msg);
    T_CHECK(qtx_ckpt_publish(tmp, step10, &e) == QTX_ERR_INPUT, "publish over existing");
    snprintf(want, sizeof want,
             "checkpoint %s already exists: a published checkpoint is never overwritten; move it "
             "away by hand or resume from it",
             step10);
    T_STREQ(e.msg, want);
    T_CHECK(exists_in(tmp, "manifest.json"), "the refused tmp dir is left alone");
    /* nor publishes a directory without a manifest */
    char bare[700], bare_dst[700];
    path2(bare, sizeof bare, g_root, ".tmp_bare");
    path2(bare_dst, sizeof bare_dst, g_root, "step_00000099");
    mkdir(bare, 0777);
    T_CHECK(qtx_ckpt_publish(bare, bare_dst, &e) == QTX_ERR_INPUT, "publish without manifest");
    snprintf(want, sizeof want,
             "checkpoint %s: has no manifest.json and manifest.crc32: call qtx_ckpt_write_manifest "
             "before qtx_ckpt_publish",
             bare);
    T_STREQ(e.msg, want);

    /* a crash while writing latest.tmp leaves the old latest in force */
    char ltmp[700];
    path2(ltmp, sizeof ltmp, g_root, "latest.tmp");
    spit(ltmp, "step_000", 8);
    char step10_resolved[1024];
    T_CHECK(qtx_ckpt_resolve("latest", g_root, step10_resolved, sizeof step10_resolved, &e) == 0,
            "resolve: %s", e.msg);
    T_STREQ(step10_resolved, step10);

    save(20, 1);
    s = slurp(latest, NULL);
    T_STREQ(s ? s : "", "step_00000020\n");
    free(s);
    T_CHECK(!exists_in(g_root, "latest.tmp"), "latest.tmp renamed away");
    char step20[700];
    path2(step20, sizeof step20, g_root, "step_00000020");
    T_CHECK(qtx_ckpt_resolve("latest", g_root, out, sizeof out, &e) == 0, "resolve: %s", e.msg);
    T_STREQ(out, step20);
    T_CHECK(qtx_ckpt_resolve(g_root, NULL, out, sizeof out, &e) == 0, "resolve root: %s", e.msg);
    T_STREQ(out, step20);
    char run[600];
    snprintf(run, sizeof run, "%s/out", g_tmp);
    char run_step[700];
    snprintf(run_step, sizeof run_step, "%s/ckpt/step_00000020", run);
    T_CHECK(qtx_ckpt_resolve(run, NULL, out, sizeof out, &e) == 0, "resolve run: %s", e.msg);
    T_STREQ(out, run_step);
    T_CHECK(qtx_ckpt_resolve(step10, g_root, out, sizeof out, &e) == 0, "resolve dir: %s", e.msg);
    T_STREQ(out, step10);
    T_CHECK(qtx_ckpt_resolve(g_tmp, NULL, out, sizeof out, &e) == QTX_ERR_INPUT, "not ckpt");
    snprintf(want, sizeof want,
             "checkpoint %s: not a checkpoint (no manifest.json, latest or ckpt/latest in it); "
             "pass a step directory (e.g. out/ckpt/step_00000010), a checkpoint root or a run's "
             "out_dir",
             g_tmp);
    T_STREQ(e.msg, want);
    T_CHECK(qtx_ckpt_resolve("latest", NULL, out, sizeof out, &e) == QTX_ERR_INPUT, "no root");

    /* step 20 has a hole: rank 3 saved no adam_m */
    qtx_ckpt_reader *r;
    T_CHECK(qtx_ckpt_open(&r, step20, &e) == 0, "open: %s", e.msg);
    if (!r) return;
    T_CHECK(read_err(r, piece(K_M, 0, 0, 0, R, C, 0, R * C), &e) == QTX_ERR_INPUT, "hole");
    snprintf(want, sizeof want,
             "checkpoint %s has no data for adam_m blk.0.attn_q rows [7, 8) cols [7, 10): no rank "
             "saved that part; " FIX,
             step20);
    T_STREQ(e.msg, want);
    /* ... but everything else of it reads */
    expect_read(r, K_M, 0, 0, 0, R, C, 0, 77);
    expect_read(r, K_M, 0, 0, 0, R, 5, 0, 60);
    expect_read(r, K_V, 0, 0, 0, R, C, 0, R * C);
    qtx_ckpt_close(r);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_tree(const char *p) {
    nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_fake_step(const char *name) {
    char p[700], f[800];
    path2(p, sizeof p, g_root, name);
    mkdir(p, 0777);
    path2(f, sizeof f, p, "rank_00000.bin");
    spit(f, "x", 1);
}

static void test_prune(void) {
    /* steps 5, 10 (published), 15, 20 (published, latest), 30, 40; a stale .tmp_ */
    make_fake_step("step_00000005");
    make_fake_step("step_00000015");
    make_fake_step("step_00000030");
    make_fake_step("step_00000040");
    make_fake_step(".tmp_step_00000050");
    char other[700];
    path2(other, sizeof other, g_root, "notes.txt");
    spit(other, "keep me", 7);
    qtx_err e = {0};
    T_CHECK(qtx_ckpt_prune(g_root, 2, "step_00000010", &e) == 0, "prune: %s", e.msg);
    T_CHECK(exists_in(g_root, "step_00000040") && exists_in(g_root, "step_00000030"), "newest 2");
    T_CHECK(exists_in(g_root, "step_00000020"), "latest kept");
    T_CHECK(exists_in(g_root, "step_00000010"), "protected kept");
    T_CHECK(!exists_in(g_root, "step_00000015") && !exists_in(g_root, "step_00000005"), "pruned");
    T_CHECK(!exists_in(g_root, ".tmp_step_00000050") && !exists_in(g_root, ".tmp_again") &&
                !exists_in(g_root, ".tmp_bare"),
            "stale .tmp_ removed");
    T_CHECK(exists_in(g_root, "notes.txt") && exists_in(g_root, "latest"), "others untouched");
    char p10[700];
    path2(p10, sizeof p10, g_root, "step_00000010");
    T_CHECK(qtx_ckpt_prune(g_root, 1, p10, &e) == 0, "prune: %s", e.msg); /* protect as a path */
    T_CHECK(exists_in(g_root, "step_00000040") && !exists_in(g_root, "step_00000030"), "keep 1");
    T_CHECK(exists_in(g_root, "step_00000020") && exists_in(g_root, "step_00000010"), "kept");
    T_CHECK(qtx_ckpt_prune(g_root, 1, NULL, &e) == 0, "prune: %s", e.msg);
    T_CHECK(!exists_in(g_root, "step_00000010") && exists_in(g_root, "step_00000020"),
            "unprotected");
    T_CHECK(qtx_ckpt_prune(g_root, 0, NULL, &e) == 0, "prune keep 0: %s", e.msg);
    T_CHECK(exists_in(g_root, "step_00000040") && exists_in(g_root, "step_00000020"), "keep all");
    char nope[700];
    path2(nope, sizeof nope, g_tmp, "nope");
    T_CHECK(qtx_ckpt_prune(nope, 1, NULL, &e) == QTX_ERR_INPUT, "prune missing root");
}

static void test_damage(const char *good) {
    char d[700], want[1400], p[800];

    /* a truncated data file */
    path2(d, sizeof d, g_tmp, "case_truncated");
    copy_dir(good, d);
    long n2 = file_size(d, "rank_00002.bin");
    path2(p, sizeof p, d, "rank_00002.bin");
    T_CHECK(truncate(p, n2 - 4) == 0, "truncate");
    snprintf(want, sizeof want,
             "checkpoint %s: rank_00002.bin is %ld bytes, the manifest says %ld: the file is "
             "truncated or was replaced; " FIX,
             d, n2 - 4, n2);
    expect_open_error(d, want);

    /* deleted files: an index, a data file, the manifest, its CRC */
    static const char *gone[] = {"rank_00001.json", "rank_00003.bin"};
    for (int i = 0; i < 2; i++) {
        snprintf(d, sizeof d, "%s/case_deleted_%d", g_tmp, i);
        copy_dir(good, d);
        path2(p, sizeof p, d, gone[i]);
        unlink(p);
        snprintf(want, sizeof want,
                 "checkpoint %s: %s is missing: the checkpoint is incomplete; " FIX, d, gone[i]);
        expect_open_error(d, want);
    }
    path2(d, sizeof d, g_tmp, "case_no_manifest");
    copy_dir(good, d);
    path2(p, sizeof p, d, "manifest.json");
    unlink(p);
    snprintf(want, sizeof want,
             "checkpoint %s: manifest.json is missing: not a checkpoint, or one whose writing did "
             "not finish; " FIX,
             d);
    expect_open_error(d, want);
    path2(d, sizeof d, g_tmp, "case_no_crc");
    copy_dir(good, d);
    path2(p, sizeof p, d, "manifest.crc32");
    unlink(p);
    snprintf(want, sizeof want,
             "checkpoint %s: manifest.crc32 is missing: the checkpoint is incomplete; " FIX, d);
    expect_open_error(d, want);

    /* a flipped byte in the manifest */
    path2(d, sizeof d, g_tmp, "case_flip_manifest");
    copy_dir(good, d);
    path2(p, sizeof p, d, "manifest.json");
    uint32_t before = crc_file(p);
    flip(d, "manifest.json", 40);
    snprintf(want, sizeof want,
             "checkpoint %s: manifest.json: CRC mismatch (expected 0x%08" PRIx32
             ", got 0x%08" PRIx32 "): the file is corrupt; " FIX,
             d, before, crc_file(p));
    expect_open_error(d, want);

    /* a flipped byte in an index */
    path2(d, sizeof d, g_tmp, "case_flip_index");
    copy_dir(good, d);
    path2(p, sizeof p, d, "rank_00001.json");
    before = crc_file(p);
    flip(d, "rank_00001.json", 150);
    snprintf(want, sizeof want,
             "checkpoint %s: rank_00001.json: CRC mismatch (expected 0x%08" PRIx32
             ", got 0x%08" PRIx32 "): the file is corrupt; " FIX,
             d, before, crc_file(p));
    expect_open_error(d, want);

    /* a flipped byte in a piece: open is fine, a read touching the piece and verify fail, a
     * read of other pieces works */
    path2(d, sizeof d, g_tmp, "case_flip_piece");
    copy_dir(good, d);
    flip(d, "rank_00000.bin", 5);
    qtx_ckpt_piece pc = piece(K_PARAM, 0, 0, 0, R, 5, 0, 60);
    float *orig = fill(K_PARAM, 0, pc.block, 0, 60);
    uint32_t want_crc = crc_of(orig, 240);
    ((unsigned char *)orig)[5] ^= 0x04;
    snprintf(want, sizeof want,
             "checkpoint %s: rank_00000.bin: CRC mismatch in piece param blk.0.attn_q (expected "
             "0x%08" PRIx32 ", got 0x%08" PRIx32 "): the file is corrupt; " FIX,
             d, want_crc, crc_of(orig, 240));
    free(orig);
    qtx_ckpt_reader *r;
    qtx_err e = {0};
    T_CHECK(qtx_ckpt_open(&r, d, &e) == 0, "open with a bad piece: %s", e.msg);
    if (r) {
        expect_read(r, K_M, 0, 0, 0, R, C, 0, R * C);
        T_CHECK(read_err(r, piece(K_PARAM, 0, 0, 0, R, C, 0, R * C), &e) == QTX_ERR_INPUT, "bad");
        T_STREQ(e.msg, want);
        T_CHECK(read_err(r, piece(K_PARAM, 0, 0, 0, R, C, 0, 3), &e) == QTX_ERR_INPUT, "again");
        T_STREQ(e.msg, want);
        qtx_ckpt_close(r);
    }
    T_CHECK(qtx_ckpt_verify(d, &e) == QTX_ERR_INPUT, "verify bad piece");
    T_STREQ(e.msg, want);

    /* a flipped padding byte (between two pieces): only the file CRC sees it */
    path2(d, sizeof d, g_tmp, "case_flip_padding");
    copy_dir(good, d);
    path2(p, sizeof p, d, "rank_00001.bin");
    before = crc_file(p);
    flip(d, "rank_00001.bin", 250);
    snprintf(want, sizeof want,
             "checkpoint %s: rank_00001.bin: CRC mismatch (expected 0x%08" PRIx32
             ", got 0x%08" PRIx32 "): the file is corrupt; " FIX,
             d, before, crc_file(p));
    T_CHECK(qtx_ckpt_verify(d, &e) == QTX_ERR_INPUT, "verify bad padding");
    T_STREQ(e.msg, want);
    T_CHECK(qtx_ckpt_open(&r, d, &e) == 0, "open: %s", e.msg);
    if (r) {
        expect_read(r, K_PARAM, 0, 0, 0, R, C, 0, R * C);
        qtx_ckpt_close(r);
    }

    /* a newer format version (written consistently, CRC and all), with and without its CRC */
    path2(d, sizeof d, g_tmp, "case_version");
    copy_dir(good, d);
    edit_consistently(d, "manifest.json", "\"version\":\t1", "\"version\":\t2");
    snprintf(want, sizeof want,
             "checkpoint %s: manifest.json: unknown format version 2; this qtx reads version 1: "
             "use the qtx that wrote it",
             d);
    expect_open_error(d, want);
    path2(p, sizeof p, d, "manifest.crc32");
    unlink(p);
    expect_open_error(d, want);

    /* indexes that are consistent (CRCs match) but out of bounds */
    path2(d, sizeof d, g_tmp, "case_offset");
    copy_dir(good, d);
    edit_consistently(d, "rank_00001.json", "\"offset\": 0,", "\"offset\": 900,");
    snprintf(want, sizeof want,
             "checkpoint %s: rank_00001.json: piece 0 (param blk.0.attn_q): bytes [900, 1140) are "
             "past the end of rank_00001.bin (%ld bytes): the index is corrupt; " FIX,
             d, file_size(d, "rank_00001.bin"));
    expect_open_error(d, want);
    path2(d, sizeof d, g_tmp, "case_unaligned");
    copy_dir(good, d);
    edit_consistently(d, "rank_00001.json", "\"offset\": 0,", "\"offset\": 2,");
    snprintf(want, sizeof want,
             "checkpoint %s: rank_00001.json: piece 0 (param blk.0.attn_q) has an offset that is "
             "not a multiple of 4: the index is corrupt; " FIX,
             d);
    expect_open_error(d, want);
    path2(d, sizeof d, g_tmp, "case_flat");
    copy_dir(good, d);
    edit_consistently(d, "rank_00002.json", "\"flat\": [37, 60]", "\"flat\": [37, 61]");
    snprintf(
        want, sizeof want,
        "checkpoint %s: rank_00002.json: piece 1 (adam_m blk.0.attn_q): flat range [37, 61) is "
        "outside its block of 60 elements: the index is corrupt; " FIX,
        d);
    expect_open_error(d, want);
    path2(d, sizeof d, g_tmp, "case_block");
    copy_dir(good, d);
    edit_consistently(d, "rank_00000.json", "\"block\": [0, 0, 12, 5]", "\"block\": [0, 6, 12, 5]");
    snprintf(want, sizeof want,
             "checkpoint %s: rank_00000.json: piece 0 (param blk.0.attn_q): block (0, 6, 12, 5) is "
             "empty or outside shape [12, 10]: the index is corrupt; " FIX,
             d);
    expect_open_error(d, want);
    path2(d, sizeof d, g_tmp, "case_shape");
    copy_dir(good, d);
    edit_consistently(d, "rank_00000.json", "\"shape\": [12, 10]",
                      "\"shape\": [9999999999999, 9999999999999]");
    snprintf(want, sizeof want,
             "checkpoint %s: rank_00000.json: piece 0 (param blk.0.attn_q): shape [9999999999999, "
             "9999999999999] is not positive or too large: the index is corrupt; " FIX,
             d);
    expect_open_error(d, want);
    path2(d, sizeof d, g_tmp, "case_negative");
    copy_dir(good, d);
    edit_consistently(d, "rank_00003.json", "\"bytes\": 92", "\"bytes\": -92");
    snprintf(want, sizeof want,
             "checkpoint %s: rank_00003.json: piece 1 (adam_m blk.0.attn_q) has no integer offset, "
             "bytes and crc32: the index is corrupt; " FIX,
             d);
    expect_open_error(d, want);
    path2(d, sizeof d, g_tmp, "case_manifest_size");
    copy_dir(good, d);
    edit_consistently(d, "manifest.json", "\"n_ranks\":\t4", "\"n_ranks\":\t3");
    snprintf(want, sizeof want,
             "checkpoint %s: manifest.json: files[6] is not {name: rank_NNNNN.bin or .json of a "
             "rank < n_ranks, listed once, bytes, crc32}; " FIX,
             d);
    expect_open_error(d, want);
    path2(d, sizeof d, g_tmp, "case_nonsense");
    mkdir(d, 0777);
    path2(p, sizeof p, d, "manifest.json");
    spit(p, "{\"format\": \"other\"}", 19);
    fix_manifest_crc(d);
    snprintf(want, sizeof want,
             "checkpoint %s: manifest.json: format is not 'qtx-ckpt': not a qtx checkpoint", d);
    expect_open_error(d, want);
}

static uint64_t g_rng = 12345;
static int64_t rnd(int64_t n) { /* uniform in [0, n) */
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (int64_t)((g_rng >> 33) % (uint64_t)n);
}

/* Random saving layouts (rows or columns over tp, uneven blocks, random ZeRO cuts) of a
 * [7, 13] tensor, each read back under random blocks and ranges. */
static void test_random_layouts(void) {
    for (int trial = 0; trial < 40; trial++) {
        char d[700];
        snprintf(d, sizeof d, "%s/random_%02d", g_tmp, trial);
        mkdir(d, 0777);
        int tp = 1 + (int)rnd(4), dp = 1 + (int)rnd(3), by_rows = (int)rnd(2);
        int64_t rows = 7, cols = 13, along = by_rows ? rows : cols;
        if (tp > along) tp = (int)along;
        for (int t = 0; t < tp; t++) {
            int64_t a = t * along / tp, b = (t + 1) * along / tp;
            qtx_ckpt_piece p = piece(K_M, 0, by_rows ? a : 0, by_rows ? 0 : a,
                                     by_rows ? b - a : rows, by_rows ? cols : b - a, 0, 0);
            snprintf(p.name, sizeof p.name, "t");
            p.shape[0] = rows, p.shape[1] = cols;
            int64_t n = p.block[2] * p.block[3], cut[4] = {0, rnd(n + 1), rnd(n + 1), n};
            if (cut[1] > cut[2]) cut[0] = cut[1], cut[1] = cut[2], cut[2] = cut[0], cut[0] = 0;
            for (int r = 0; r < dp; r++) {
                qtx_ckpt_writer *w;
                qtx_err e = {0};
                T_CHECK(qtx_ckpt_writer_open(&w, d, r * tp + t, &e) == 0, "open: %s", e.msg);
                if (!w) continue;
                p.flat[0] = dp == 1 ? 0 : cut[r], p.flat[1] = dp == 1       ? n
                                                              : r == dp - 1 ? n
                                                                            : cut[r + 1];
                write_p(w, &p, K_M, 0);
                T_CHECK(qtx_ckpt_writer_close(w, &e) == 0, "close: %s", e.msg);
            }
        }
        qtx_err e = {0};
        T_CHECK(qtx_ckpt_write_manifest(d, tp * dp, NULL, &e) == 0, "manifest: %s", e.msg);
        qtx_ckpt_reader *r;
        T_CHECK(qtx_ckpt_open(&r, d, &e) == 0, "open: %s", e.msg);
        if (!r) continue;
        for (int q = 0; q < 30; q++) {
            int64_t nr = 1 + rnd(rows), nc = 1 + rnd(cols), r0 = rnd(rows - nr + 1),
                    c0 = rnd(cols - nc + 1), f0 = rnd(nr * nc + 1), f1 = f0 + rnd(nr * nc - f0 + 1);
            int64_t b[4] = {r0, c0, nr, nc}, shape[2] = {rows, cols};
            float *want = fill(K_M, 0, b, f0, f1);
            float *got = malloc((size_t)(f1 - f0 + 1) * sizeof *got);
            int rc = qtx_ckpt_read(r, "adam_m", "t", shape, b, f0, f1, got, &e);
            T_CHECK(rc == 0 && !memcmp(got, want, (size_t)(f1 - f0) * sizeof *got),
                    "trial %d (tp %d dp %d rows %d) read (%" PRId64 ", %" PRId64 ", %" PRId64
                    ", %" PRId64 ") [%" PRId64 ", %" PRId64 "): %s",
                    trial, tp, dp, by_rows, r0, c0, nr, nc, f0, f1, rc ? e.msg : "differs");
            free(want);
            free(got);
        }
        qtx_ckpt_close(r);
    }
}

static void test_writer_errors(void) {
    char d[700], want[1400], p[800];
    qtx_ckpt_writer *w = NULL;
    qtx_err e = {0};
    path2(d, sizeof d, g_tmp, "no_such_dir");
    T_CHECK(qtx_ckpt_writer_open(&w, d, 0, &e) == QTX_ERR_RUNTIME && !w, "open in missing dir");
    snprintf(want, sizeof want,
             "checkpoint %s: cannot create rank_00000.bin: No such file or directory: check that "
             "the directory exists, is writable and has free space",
             d);
    T_STREQ(e.msg, want);

    /* disk full: the data file is /dev/full */
    path2(d, sizeof d, g_tmp, "full");
    mkdir(d, 0777);
    path2(p, sizeof p, d, "rank_00000.bin");
    if (symlink("/dev/full", p) == 0) {
        T_CHECK(qtx_ckpt_writer_open(&w, d, 0, &e) == 0, "open: %s", e.msg);
        qtx_ckpt_piece pc = piece(K_PARAM, 0, 0, 0, R, C, 0, R * C);
        float *x = fill(K_PARAM, 0, pc.block, 0, R * C);
        T_CHECK(qtx_ckpt_write_piece(w, &pc, x, &e) == QTX_ERR_RUNTIME, "disk full");
        snprintf(want, sizeof want,
                 "checkpoint %s: writing rank_00000.bin: No space left on device: check that the "
                 "directory exists, is writable and has free space",
                 d);
        T_STREQ(e.msg, want);
        T_CHECK(qtx_ckpt_write_piece(w, &pc, x, &e) == QTX_ERR_RUNTIME, "sticky");
        snprintf(want, sizeof want,
                 "checkpoint %s: rank_00000.bin: an earlier write failed; this checkpoint is lost",
                 d);
        T_STREQ(e.msg, want);
        T_CHECK(qtx_ckpt_writer_close(w, &e) == QTX_ERR_RUNTIME, "close after failure");
        T_STREQ(e.msg, want);
        free(x);
    }

    /* malformed pieces */
    path2(d, sizeof d, g_tmp, "bad_pieces");
    mkdir(d, 0777);
    T_CHECK(qtx_ckpt_writer_open(&w, d, 1, &e) == 0, "open: %s", e.msg);
    qtx_ckpt_piece pc = piece(K_PARAM, 0, 0, 6, R, 5, 0, 60);
    float x[60] = {0};
    T_CHECK(qtx_ckpt_write_piece(w, &pc, x, &e) == QTX_ERR_INPUT, "block outside");
    snprintf(want, sizeof want,
             "checkpoint %s: rank 1: piece param blk.0.attn_q: block (0, 6, 12, 5) is empty or "
             "outside shape [12, 10]",
             d);
    T_STREQ(e.msg, want);
    pc = piece(K_PARAM, 0, 0, 5, R, 5, 10, 5);
    T_CHECK(qtx_ckpt_write_piece(w, &pc, x, &e) == QTX_ERR_INPUT, "flat reversed");
    pc = piece(K_PARAM, 0, 0, 5, R, 5, 0, 60);
    memset(pc.name, 'a', sizeof pc.name);
    T_CHECK(qtx_ckpt_write_piece(w, &pc, x, &e) == QTX_ERR_INPUT, "unterminated name");
    T_CHECK(qtx_ckpt_writer_close(w, &e) == 0, "close: %s", e.msg);

    /* the manifest needs both files of every rank that wrote */
    path2(p, sizeof p, d, "rank_00000.bin");
    spit(p, "", 0);
    T_CHECK(qtx_ckpt_write_manifest(d, 2, NULL, &e) == QTX_ERR_RUNTIME, "half a rank");
    snprintf(want, sizeof want,
             "checkpoint %s: rank 0 wrote rank_00000.bin but not rank_00000.json: its writer did "
             "not close; call qtx_ckpt_write_manifest after every rank closed",
             d);
    T_STREQ(e.msg, want);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/qtx_test_ckpt_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_root, sizeof g_root, "%s/out/ckpt", g_tmp);
    char out[600];
    snprintf(out, sizeof out, "%s/out", g_tmp);
    mkdir(out, 0777);
    mkdir(g_root, 0777);

    save(10, 0);
    char step10[700];
    path2(step10, sizeof step10, g_root, "step_00000010");
    T_CHECK(!exists_in(g_root, ".tmp_step_00000010"), "tmp dir renamed");
    test_round_trip(step10);
    test_layout_on_disk(step10);
    test_damage(step10);
    test_publish_latest_resolve(step10);
    test_writer_errors();
    test_random_layouts();
    test_prune();

    rm_tree(g_tmp);
    return qtx_test_done("test_ckpt_store");
}
