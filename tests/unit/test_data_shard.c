/* test_data_shard.c: HDF5 token shards: round trips in both dtypes, the atomic write, and
 * every kind of bad shard with its exact message (shard.h, docs/FORMATS.md). Bad shards are
 * made by editing a good one with the raw HDF5 API. */
#include <dirent.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shard.h"
#include "testutil.h"

#define REGEN "regenerate it with qtx prep"

static char g_dir[64];

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

static qtx_shard_meta meta_for(int64_t vocab) {
    qtx_shard_meta m = {0};
    m.vocab_size = vocab;
    m.eos_id = 0;
    snprintf(m.tokenizer_hash, sizeof m.tokenizer_hash, "abc123");
    return m;
}

/* Tokens with some structure (so compression has something to do); documents of ~1000. */
static uint32_t *make_tokens(int64_t n, int64_t vocab, uint64_t seed, int64_t **docs,
                             int64_t *n_docs) {
    uint32_t *t = malloc((size_t)(n ? n : 1) * sizeof *t);
    uint64_t x = seed * 2654435761u + 1;
    for (int64_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        t[i] = (uint32_t)((x >> 33) % (uint64_t)(i % 7 == 0 ? vocab : (vocab < 300 ? vocab : 300)));
    }
    *n_docs = n / 1000 + 1;
    *docs = malloc((size_t)(*n_docs + 1) * sizeof **docs);
    for (int64_t d = 0; d < *n_docs; d++) (*docs)[d] = d * 1000 > n ? n : d * 1000;
    (*docs)[*n_docs] = n;
    return t;
}

static void path_of(char *p, size_t cap, const char *name) {
    snprintf(p, cap, "%s/%s", g_dir, name);
}

/* Writes a good shard of n tokens at name; returns its tokens (caller frees). */
static uint32_t *good_shard(const char *name, int64_t n, int64_t vocab) {
    int64_t *docs, n_docs;
    uint32_t *t = make_tokens(n, vocab, 7, &docs, &n_docs);
    char p[256];
    path_of(p, sizeof p, name);
    qtx_shard_meta m = meta_for(vocab);
    qtx_err e = {0};
    int rc = qtx_shard_write(p, t, n, docs, n_docs, &m, &e);
    T_CHECK(rc == 0, "write %s: %s", name, e.msg);
    free(docs);
    return t;
}

static int tokens_dtype_size(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "tokens", H5P_DEFAULT);
    hid_t t = H5Dget_type(d);
    int size = (int)H5Tget_size(t);
    int nf = 0;
    hid_t dcpl = H5Dget_create_plist(d);
    nf = H5Pget_nfilters(dcpl);
    H5Pclose(dcpl);
    H5Tclose(t);
    H5Dclose(d);
    H5Fclose(f);
    return nf == 3 ? size : -size; /* shuffle, deflate, fletcher32 */
}

static void round_trip(int64_t n, int64_t vocab, int want_size) {
    char name[64], p[256];
    snprintf(name, sizeof name, "rt_%" PRId64 "_%" PRId64 ".h5", n, vocab);
    path_of(p, sizeof p, name);
    int before = count_files(g_dir);
    uint32_t *t = good_shard(name, n, vocab);
    T_CHECK(count_files(g_dir) == before + 1, "a temp file was left behind in %s", g_dir);
    T_CHECK(tokens_dtype_size(p) == want_size, "%s: dtype size/filters %d, want %d", name,
            tokens_dtype_size(p), want_size);

    qtx_shard *s = NULL;
    qtx_err e = {0};
    int rc = qtx_shard_open(p, &s, &e);
    T_CHECK(rc == 0, "open: %s", e.msg);
    if (rc) return;
    const qtx_shard_meta *m = qtx_shard_get_meta(s);
    T_CHECK(m->format_version == QTX_SHARD_FORMAT_VERSION && m->vocab_size == vocab &&
                m->eos_id == 0 && m->n_tokens == n && m->n_docs == n / 1000 + 1,
            "meta: v%d vocab %" PRId64 " n %" PRId64 " docs %" PRId64, m->format_version,
            m->vocab_size, m->n_tokens, m->n_docs);
    T_STREQ(m->tokenizer_hash, "abc123");
    T_STREQ(qtx_shard_path(s), p);

    uint32_t *r = malloc((size_t)(n ? n : 1) * sizeof *r);
    rc = qtx_shard_read(s, 0, n, r, &e);
    T_CHECK(rc == 0 && memcmp(r, t, (size_t)n * sizeof *r) == 0, "full read: %s", e.msg);
    /* ranges inside one chunk, across a chunk boundary, at the end */
    int64_t ranges[][2] = {{0, 1}, {5, 17}, {16380, 20}, {65530, 20}, {n - 17, 17}, {n / 2, n / 3}};
    for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++) {
        int64_t a = ranges[i][0], c = ranges[i][1];
        if (a < 0 || a + c > n) continue;
        memset(r, 0xff, (size_t)c * sizeof *r);
        rc = qtx_shard_read(s, a, c, r, &e);
        T_CHECK(rc == 0 && memcmp(r, t + a, (size_t)c * sizeof *r) == 0,
                "read [%" PRId64 ", +%" PRId64 "): %s", a, c, rc ? e.msg : "mismatch");
    }
    rc = qtx_shard_read(s, n - 3, 4, r, &e);
    T_CHECK(rc == QTX_ERR_INPUT, "read past the end must fail");
    qtx_shard_close(s);
    free(r);
    free(t);
}

/* Opens a written shard for editing with the raw HDF5 API. */
static hid_t edit(const char *path) {
    return H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
}

static void set_attr_i64(hid_t f, const char *name, int64_t v) {
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
}

static void write_at(hid_t f, const char *dset, hid_t mtype, int64_t pos, const void *v) {
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    hid_t fs = H5Dget_space(d);
    hsize_t off = (hsize_t)pos, one = 1;
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &one, NULL);
    hid_t ms = H5Screate_simple(1, &one, NULL);
    H5Dwrite(d, mtype, ms, fs, H5P_DEFAULT, v);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
}

static void expect_open_error(const char *path, const char *want) {
    qtx_shard *s = NULL;
    qtx_err e = {0};
    int rc = qtx_shard_open(path, &s, &e);
    T_CHECK(rc == QTX_ERR_INPUT && s == NULL, "open %s should fail, rc %d", path, rc);
    T_STREQ(e.msg, want);
    qtx_shard_close(s);
}

static void bad_shards(void) {
    char p[256], want[1024];
    const int64_t n = 3000;

    path_of(p, sizeof p, "missing.h5");
    snprintf(want, sizeof want,
             "shard %s: cannot open: No such file or directory: check the data path", p);
    expect_open_error(p, want);

    path_of(p, sizeof p, "text.h5");
    FILE *fp = fopen(p, "w");
    fputs("this is not HDF5\n", fp);
    fclose(fp);
    snprintf(want, sizeof want, "shard %s: not an HDF5 file: " REGEN, p);
    expect_open_error(p, want);

    free(good_shard("no_tokens.h5", n, 1000));
    path_of(p, sizeof p, "no_tokens.h5");
    hid_t f = edit(p);
    H5Ldelete(f, "tokens", H5P_DEFAULT);
    H5Fclose(f);
    snprintf(want, sizeof want,
             "shard %s: missing dataset /tokens: not a Quadtrix token shard; " REGEN, p);
    expect_open_error(p, want);

    free(good_shard("no_docs.h5", n, 1000));
    path_of(p, sizeof p, "no_docs.h5");
    f = edit(p);
    H5Ldelete(f, "doc_offsets", H5P_DEFAULT);
    H5Fclose(f);
    snprintf(want, sizeof want,
             "shard %s: missing dataset /doc_offsets: not a Quadtrix token shard; " REGEN, p);
    expect_open_error(p, want);

    free(good_shard("no_attr.h5", n, 1000));
    path_of(p, sizeof p, "no_attr.h5");
    f = edit(p);
    H5Adelete(f, "eos_id");
    H5Fclose(f);
    snprintf(want, sizeof want,
             "shard %s: missing attribute eos_id: not a Quadtrix token shard; " REGEN, p);
    expect_open_error(p, want);

    free(good_shard("version.h5", n, 1000));
    path_of(p, sizeof p, "version.h5");
    f = edit(p);
    set_attr_i64(f, "format_version", 2);
    H5Fclose(f);
    snprintf(want, sizeof want,
             "shard %s: format_version 2 is not supported (this qtx reads version 1): " REGEN
             " by this qtx",
             p);
    expect_open_error(p, want);

    free(good_shard("ntokens.h5", n, 1000));
    path_of(p, sizeof p, "ntokens.h5");
    f = edit(p);
    set_attr_i64(f, "n_tokens", n + 5);
    H5Fclose(f);
    snprintf(want, sizeof want,
             "shard %s: attribute n_tokens is 3005 but /tokens holds 3000 tokens: the file is "
             "damaged; " REGEN,
             p);
    expect_open_error(p, want);

    free(good_shard("monotone.h5", n, 1000)); /* offsets 0 1000 2000 3000 3000 */
    path_of(p, sizeof p, "monotone.h5");
    f = edit(p);
    int64_t v = 500;
    write_at(f, "doc_offsets", H5T_NATIVE_INT64, 2, &v);
    H5Fclose(f);
    snprintf(want, sizeof want,
             "shard %s: /doc_offsets is not monotone: entry 2 is 500 after 1000: " REGEN, p);
    expect_open_error(p, want);

    free(good_shard("docend.h5", n, 1000));
    path_of(p, sizeof p, "docend.h5");
    f = edit(p);
    v = 3001;
    write_at(f, "doc_offsets", H5T_NATIVE_INT64, 4, &v);
    H5Fclose(f);
    snprintf(want, sizeof want,
             "shard %s: /doc_offsets runs from 0 to 3001 but must run from 0 to n_tokens 3000: "
             "" REGEN,
             p);
    expect_open_error(p, want);

    /* a token id out of range: open succeeds, the read that covers it names file and place */
    free(good_shard("badid.h5", n, 1000));
    path_of(p, sizeof p, "badid.h5");
    f = edit(p);
    uint32_t big = 1000;
    write_at(f, "tokens", H5T_NATIVE_UINT32, 1234, &big);
    H5Fclose(f);
    qtx_shard *s = NULL;
    qtx_err e = {0};
    T_CHECK(qtx_shard_open(p, &s, &e) == 0, "open badid: %s", e.msg);
    uint32_t buf[3000];
    if (s) {
        T_CHECK(qtx_shard_read(s, 0, 1000, buf, &e) == 0, "read before the bad id: %s", e.msg);
        T_CHECK(qtx_shard_read(s, 1200, 100, buf, &e) == QTX_ERR_INPUT, "bad id not caught");
        snprintf(want, sizeof want,
                 "shard %s: token id 1000 at position 1234 is >= vocab_size 1000: the file is "
                 "corrupt; " REGEN,
                 p);
        T_STREQ(e.msg, want);
        qtx_shard_close(s);
    }
}

/* Flips one byte in the middle of the compressed bytes of /tokens chunk 1: fletcher32 must
 * catch it on read, chunk 0 must still read fine. */
static void corrupt_chunk(void) {
    char p[256], want[1024];
    const int64_t n = 3 * 65536 + 100;
    uint32_t *t = good_shard("corrupt.h5", n, 4096);
    path_of(p, sizeof p, "corrupt.h5");

    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "tokens", H5P_DEFAULT);
    hid_t fs = H5Dget_space(d);
    hsize_t off[1];
    unsigned mask;
    haddr_t addr = 0;
    hsize_t size = 0;
    herr_t hr = H5Dget_chunk_info(d, fs, 1, off, &mask, &addr, &size);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
    T_CHECK(hr >= 0 && off[0] >= 2000 && size > 100, "chunk info: off %llu size %llu",
            (unsigned long long)off[0], (unsigned long long)size);
    int64_t c1 = (int64_t)off[0]; /* where chunk 1 starts */

    FILE *fp = fopen(p, "r+b");
    long at = (long)(addr + size / 2);
    fseek(fp, at, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, at, SEEK_SET);
    fputc(c ^ 0x5a, fp);
    fclose(fp);

    qtx_shard *s = NULL;
    qtx_err e = {0};
    T_CHECK(qtx_shard_open(p, &s, &e) == 0, "open corrupt: %s", e.msg);
    if (!s) return;
    uint32_t *buf = malloc(70000 * sizeof *buf);
    T_CHECK(qtx_shard_read(s, 100, 1000, buf, &e) == 0 && memcmp(buf, t + 100, 4000) == 0,
            "chunk 0 must still read: %s", e.msg);
    T_CHECK(qtx_shard_read(s, c1 + 10, 17, buf, &e) == QTX_ERR_INPUT, "corruption missed");
    snprintf(want, sizeof want,
             "shard %s: chunk checksum mismatch reading tokens [%" PRId64 ", %" PRId64
             "): the file is corrupt; " REGEN,
             p, c1 + 10, c1 + 27);
    T_STREQ(e.msg, want);
    /* a read spanning chunks 0 and 1 fails the same way */
    T_CHECK(qtx_shard_read(s, c1 - 500, 1000, buf, &e) == QTX_ERR_INPUT, "corruption missed");
    T_CHECK(strstr(e.msg, "chunk checksum mismatch"), "msg: %s", e.msg);
    qtx_shard_close(s);
    free(buf);
    free(t);
}

static void bad_writes(void) {
    char p[256], want[1024];
    qtx_err e = {0};
    uint32_t t[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    int64_t docs[3] = {0, 4, 10};
    qtx_shard_meta m = meta_for(10);
    int before = count_files(g_dir);

    path_of(p, sizeof p, "badtok.h5");
    T_CHECK(qtx_shard_write(p, t, 10, docs, 2, &m, &e) == QTX_ERR_INPUT, "id 10 >= vocab 10");
    snprintf(want, sizeof want,
             "shard %s: token id 10 at position 9 is >= vocab_size 10: tokenize with the "
             "shard's tokenizer",
             p);
    T_STREQ(e.msg, want);

    m.vocab_size = 11;
    docs[1] = 11;
    path_of(p, sizeof p, "baddocs.h5");
    T_CHECK(qtx_shard_write(p, t, 10, docs, 2, &m, &e) == QTX_ERR_INPUT, "docs not monotone");
    snprintf(want, sizeof want, "shard %s: doc_offsets is not monotone: entry 2 is 10 after 11", p);
    T_STREQ(e.msg, want);

    docs[1] = 4;
    snprintf(p, sizeof p, "%s/no/such/dir/x.h5", g_dir);
    T_CHECK(qtx_shard_write(p, t, 10, docs, 2, &m, &e) == QTX_ERR_RUNTIME, "missing dir");
    T_CHECK(strstr(e.msg, p) && strstr(e.msg, "check that the directory exists"), "msg: %s", e.msg);
    T_CHECK(count_files(g_dir) == before, "a failed write left a file in %s", g_dir);

    /* an empty shard is legal and reads as empty */
    int64_t zero = 0;
    path_of(p, sizeof p, "empty.h5");
    T_CHECK(qtx_shard_write(p, t, 0, &zero, 0, &m, &e) == 0, "empty write: %s", e.msg);
    qtx_shard *s = NULL;
    T_CHECK(qtx_shard_open(p, &s, &e) == 0, "empty open: %s", e.msg);
    if (s) {
        T_CHECK(qtx_shard_get_meta(s)->n_tokens == 0, "empty n_tokens");
        T_CHECK(qtx_shard_read(s, 0, 0, t, &e) == 0, "empty read: %s", e.msg);
        qtx_shard_close(s);
    }
    /* overwriting an existing shard replaces it whole */
    T_CHECK(qtx_shard_write(p, t, 10, docs, 2, &m, &e) == 0, "rewrite: %s", e.msg);
    T_CHECK(qtx_shard_open(p, &s, &e) == 0 && qtx_shard_get_meta(s)->n_tokens == 10,
            "rewritten shard: %s", e.msg);
    qtx_shard_close(s);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/qtx_test_shard_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    round_trip(3 * 65536 + 1234, 4096, 2); /* several chunks, uint16 */
    round_trip(100000, 65535, 2);          /* the largest uint16 vocab */
    round_trip(2 * 65536 + 77, 100000, 4); /* uint32 */
    round_trip(50, 70000, 4);              /* one chunk smaller than the default */
    bad_shards();
    corrupt_chunk();
    bad_writes();
    qtx_test_remove_dir(g_dir);
    return qtx_test_done("test_data_shard");
}
