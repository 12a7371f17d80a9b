/* shard.c: writing, validating and reading HDF5 token shards (shard.h, docs/FORMATS.md).
 *
 * HDF5's own error printing is switched off around every call we make (and restored after,
 * so other HDF5 users in the process keep theirs); failures become one-line qtx_err messages
 * that name the file and say what to do. With the thread-safe HDF5 build the error settings
 * and stack are per thread, so the loader's prefetch thread gets the same treatment.
 */
#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Tokens per chunk. A shuffled sample read inflates every chunk its window touches, so the
 * chunk bounds the cost of a random read: bench_loader (seq_len 1024, shuffled) streams 1.4M
 * tokens/s with 64Ki-token chunks, 4.9M with 16Ki, 7.9M with 8Ki, at 1.79, 1.78 and 1.86
 * bytes/token on disk. 16Ki keeps the size and reads 3x faster. */
#define CHUNK_TOKENS 16384
#define DEFLATE_LEVEL 4
/* Per-dataset chunk cache: a few chunks, enough for in-order reads whose windows straddle
 * chunk boundaries. Kept small because the loader holds every shard open at once. */
#define CHUNK_CACHE_BYTES (512 * 1024)
#define REGEN "regenerate it with qtx prep"

struct qtx_shard {
    char *path;
    hid_t file, tokens;
    hid_t fspace, mspace; /* reused by every read: no per-read dataspace objects */
    qtx_shard_meta meta;
};

/* ---- HDF5 error handling -------------------------------------------------------------- */

/* While one of our functions runs, HDF5's automatic error report comes here instead of
 * stderr. It is called when an API call fails, with the error stack still intact, and keeps
 * the first failure's innermost (most specific) description and whether a Fletcher32
 * checksum tripped; cleanup calls after it cannot overwrite the cause. */
typedef struct h5_quiet {
    H5E_auto2_t fn; /* the handler to restore */
    void *data;
    int failed;
    int checksum;
    char desc[256];
} h5_quiet;

static herr_t why_walk(unsigned n, const H5E_error2_t *err, void *data) {
    h5_quiet *q = data;
    if (err->desc && err->desc[0]) snprintf(q->desc, sizeof q->desc, "%s", err->desc);
    if (err->desc && strstr(err->desc, "Fletcher32")) q->checksum = 1;
    return 0;
}

static herr_t record_failure(hid_t stack, void *data) {
    h5_quiet *q = data;
    if (!q->failed) {
        q->failed = 1;
        H5Ewalk2(stack, H5E_WALK_DOWNWARD, why_walk, q);
    }
    return 0;
}

static void quiet_begin(h5_quiet *q) {
    memset(q, 0, sizeof *q);
    snprintf(q->desc, sizeof q->desc, "unknown HDF5 error");
    H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data);
    H5Eset_auto2(H5E_DEFAULT, record_failure, q);
}

static void quiet_end(h5_quiet *q) {
    if (q->failed) H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, q->fn, q->data);
}

static void close_id(hid_t *id, herr_t (*fn)(hid_t)) {
    if (*id >= 0) fn(*id);
    *id = -1;
}

/* ---- writing ---------------------------------------------------------------------------- */

static int validate_input(const char *path, const uint32_t *tokens, int64_t n_tokens,
                          const int64_t *doc_offsets, int64_t n_docs, const qtx_shard_meta *m,
                          qtx_err *e) {
    if (n_tokens < 0 || n_docs < 0)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "shard %s: negative n_tokens %" PRId64 " or n_docs %" PRId64, path,
                        n_tokens, n_docs);
    if (m->vocab_size < 1 || m->vocab_size > ((int64_t)1 << 32))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "shard %s: vocab_size %" PRId64 " is out of range: it must be 1..2^32",
                        path, m->vocab_size);
    if ((int64_t)m->eos_id >= m->vocab_size)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "shard %s: eos_id %" PRIu32 " is >= vocab_size %" PRId64
                        ": use the tokenizer's EOS id",
                        path, m->eos_id, m->vocab_size);
    if (strnlen(m->tokenizer_hash, sizeof m->tokenizer_hash) >= sizeof m->tokenizer_hash)
        return qtx_fail(e, QTX_ERR_INPUT, "shard %s: tokenizer_hash is longer than %zu characters",
                        path, sizeof m->tokenizer_hash - 1);
    if (doc_offsets[0] != 0 || doc_offsets[n_docs] != n_tokens)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "shard %s: doc_offsets runs from %" PRId64 " to %" PRId64
                        " but must run from 0 to n_tokens %" PRId64,
                        path, doc_offsets[0], doc_offsets[n_docs], n_tokens);
    for (int64_t i = 1; i <= n_docs; i++)
        if (doc_offsets[i] < doc_offsets[i - 1])
            return qtx_fail(e, QTX_ERR_INPUT,
                            "shard %s: doc_offsets is not monotone: entry %" PRId64 " is %" PRId64
                            " after %" PRId64,
                            path, i, doc_offsets[i], doc_offsets[i - 1]);
    for (int64_t i = 0; i < n_tokens; i++)
        if ((int64_t)tokens[i] >= m->vocab_size)
            return qtx_fail(e, QTX_ERR_INPUT,
                            "shard %s: token id %" PRIu32 " at position %" PRId64
                            " is >= vocab_size %" PRId64 ": tokenize with the shard's tokenizer",
                            path, tokens[i], i, m->vocab_size);
    return QTX_OK;
}

/* A chunked dataset with shuffle + deflate + fletcher32 (fletcher32 last, so the checksum
 * covers the compressed bytes and catches corruption before zlib sees it). */
static hid_t create_dataset(hid_t file, const char *name, hid_t type, int64_t n) {
    hsize_t dims = (hsize_t)n, maxdims = n > 0 ? (hsize_t)n : H5S_UNLIMITED;
    hsize_t chunk = n <= 0 ? 1 : n < CHUNK_TOKENS ? (hsize_t)n : CHUNK_TOKENS;
    hid_t space = H5Screate_simple(1, &dims, &maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t ds = -1;
    if (space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 1, &chunk) >= 0 &&
        H5Pset_shuffle(dcpl) >= 0 && H5Pset_deflate(dcpl, DEFLATE_LEVEL) >= 0 &&
        H5Pset_fletcher32(dcpl) >= 0)
        ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    close_id(&dcpl, H5Pclose);
    close_id(&space, H5Sclose);
    return ds;
}

static int write_attr(hid_t file, const char *name, hid_t ftype, hid_t mtype, const void *v) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = space >= 0 ? H5Acreate2(file, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int ok = a >= 0 && H5Awrite(a, mtype, v) >= 0;
    close_id(&a, H5Aclose);
    close_id(&space, H5Sclose);
    return ok;
}

/* Writes the whole file at tmp; returns 0, or -1 with the cause in the caller's h5_quiet. */
static int write_hdf5(const char *tmp, const uint32_t *tokens, int64_t n_tokens,
                      const int64_t *doc_offsets, int64_t n_docs, const qtx_shard_meta *m) {
    hid_t file = -1, tok = -1, docs = -1, str = -1;
    int ok = 0;
    file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) goto done;
    hid_t ttype = m->vocab_size <= 65535 ? H5T_STD_U16LE : H5T_STD_U32LE;
    tok = create_dataset(file, "tokens", ttype, n_tokens);
    if (tok < 0) goto done;
    if (n_tokens > 0 && H5Dwrite(tok, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens) < 0)
        goto done;
    docs = create_dataset(file, "doc_offsets", H5T_STD_I64LE, n_docs + 1);
    if (docs < 0) goto done;
    if (H5Dwrite(docs, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, doc_offsets) < 0) goto done;

    int version = QTX_SHARD_FORMAT_VERSION;
    size_t hlen = strlen(m->tokenizer_hash);
    str = H5Tcopy(H5T_C_S1);
    if (str < 0 || H5Tset_size(str, hlen + 1) < 0 || H5Tset_strpad(str, H5T_STR_NULLTERM) < 0)
        goto done;
    if (!write_attr(file, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, &version) ||
        !write_attr(file, "vocab_size", H5T_STD_I64LE, H5T_NATIVE_INT64, &m->vocab_size) ||
        !write_attr(file, "eos_id", H5T_STD_U32LE, H5T_NATIVE_UINT32, &m->eos_id) ||
        !write_attr(file, "tokenizer_hash", str, str, m->tokenizer_hash) ||
        !write_attr(file, "n_tokens", H5T_STD_I64LE, H5T_NATIVE_INT64, &n_tokens) ||
        !write_attr(file, "n_docs", H5T_STD_I64LE, H5T_NATIVE_INT64, &n_docs))
        goto done;
    ok = 1;
done:
    close_id(&str, H5Tclose);
    close_id(&docs, H5Dclose);
    close_id(&tok, H5Dclose);
    if (file >= 0 && H5Fclose(file) < 0) ok = 0;
    return ok ? 0 : -1;
}

static int fsync_path(const char *p, int flags) {
    int fd = open(p, flags);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int qtx_shard_write(const char *path, const uint32_t *tokens, int64_t n_tokens,
                    const int64_t *doc_offsets, int64_t n_docs, const qtx_shard_meta *meta,
                    qtx_err *e) {
    int rc = validate_input(path, tokens, n_tokens, doc_offsets, n_docs, meta, e);
    if (rc) return rc;

    /* <dir>/.<name>.tmp.<pid>: same directory, so the rename is atomic */
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path) : 0;
    const char *name = slash ? slash + 1 : path;
    size_t cap = strlen(path) + 64;
    char *tmp = qtx_malloc(cap), *dir = qtx_malloc(cap);
    snprintf(dir, cap, "%.*s", slash ? (dirlen ? dirlen : 1) : 1, slash ? path : ".");
    if (slash)
        snprintf(tmp, cap, "%.*s/.%s.tmp.%ld", dirlen, path, name, (long)getpid());
    else
        snprintf(tmp, cap, ".%s.tmp.%ld", name, (long)getpid());

    h5_quiet q;
    quiet_begin(&q);
    int bad = write_hdf5(tmp, tokens, n_tokens, doc_offsets, n_docs, meta);
    quiet_end(&q);
    if (bad) {
        unlink(tmp);
        rc = qtx_fail(e, QTX_ERR_RUNTIME,
                      "shard %s: writing %s failed (HDF5: %s): check that the directory exists, "
                      "is writable and has free space",
                      path, tmp, q.desc);
    } else if (fsync_path(tmp, O_RDONLY) != 0 || rename(tmp, path) != 0) {
        rc = qtx_fail(e, QTX_ERR_RUNTIME,
                      "shard %s: cannot publish %s: %s: check the directory's permissions and "
                      "free space",
                      path, tmp, strerror(errno));
        unlink(tmp);
    } else {
        fsync_path(dir, O_RDONLY | O_DIRECTORY); /* make the rename itself durable */
    }
    free(tmp);
    free(dir);
    return rc;
}

/* ---- opening and validating --------------------------------------------------------------- */

static int missing_attr(const qtx_shard *s, const char *name, qtx_err *e) {
    return qtx_fail(e, QTX_ERR_INPUT,
                    "shard %s: missing attribute %s: not a Quadtrix token shard; " REGEN, s->path,
                    name);
}

static int attr_int(qtx_shard *s, const char *name, int64_t *v, qtx_err *e) {
    if (H5Aexists(s->file, name) <= 0) return missing_attr(s, name, e);
    hid_t a = H5Aopen(s->file, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1, sp = a >= 0 ? H5Aget_space(a) : -1;
    int ok = t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_INTEGER &&
             H5Sget_simple_extent_npoints(sp) == 1 && H5Aread(a, H5T_NATIVE_INT64, v) >= 0;
    close_id(&sp, H5Sclose);
    close_id(&t, H5Tclose);
    close_id(&a, H5Aclose);
    if (!ok)
        return qtx_fail(e, QTX_ERR_INPUT, "shard %s: attribute %s is not a single integer: " REGEN,
                        s->path, name);
    return QTX_OK;
}

static int attr_string(qtx_shard *s, const char *name, char *out, size_t cap, qtx_err *e) {
    if (H5Aexists(s->file, name) <= 0) return missing_attr(s, name, e);
    hid_t a = H5Aopen(s->file, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1, mt = -1;
    char buf[256] = {0};
    int ok = 0;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING) {
        if (H5Tis_variable_str(t) > 0) {
            char *v = NULL;
            mt = H5Tcopy(H5T_C_S1);
            if (mt >= 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Aread(a, mt, &v) >= 0) {
                ok = v && strlen(v) < sizeof buf;
                if (ok) snprintf(buf, sizeof buf, "%s", v);
                H5free_memory(v);
            }
        } else if (H5Tget_size(t) < sizeof buf) {
            mt = H5Tcopy(t);
            ok = mt >= 0 && H5Aread(a, mt, buf) >= 0;
        }
    }
    close_id(&mt, H5Tclose);
    close_id(&t, H5Tclose);
    close_id(&a, H5Aclose);
    if (!ok || strlen(buf) >= cap)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "shard %s: attribute %s is not a string of under %zu characters: " REGEN,
                        s->path, name, cap);
    memcpy(out, buf, strlen(buf) + 1);
    return QTX_OK;
}

/* Opens a 1-D integer dataset and returns its length; names the problem otherwise. */
static hid_t open_1d(qtx_shard *s, const char *name, hid_t dapl, int64_t *len, hid_t *type,
                     qtx_err *e) {
    if (H5Lexists(s->file, name, H5P_DEFAULT) <= 0) {
        qtx_fail(e, QTX_ERR_INPUT,
                 "shard %s: missing dataset /%s: not a Quadtrix token shard; " REGEN, s->path,
                 name);
        return -1;
    }
    hid_t ds = H5Dopen2(s->file, name, dapl);
    hid_t t = ds >= 0 ? H5Dget_type(ds) : -1, sp = ds >= 0 ? H5Dget_space(ds) : -1;
    hsize_t dims = 0;
    int ok = t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_INTEGER &&
             H5Sget_simple_extent_ndims(sp) == 1 && H5Sget_simple_extent_dims(sp, &dims, NULL) == 1;
    close_id(&sp, H5Sclose);
    if (!ok) {
        close_id(&t, H5Tclose);
        close_id(&ds, H5Dclose);
        qtx_fail(e, QTX_ERR_INPUT, "shard %s: /%s is not a one-dimensional integer dataset: " REGEN,
                 s->path, name);
        return -1;
    }
    *len = (int64_t)dims;
    *type = t;
    return ds;
}

static int check_doc_offsets(qtx_shard *s, const h5_quiet *q, qtx_err *e) {
    int64_t len = 0;
    hid_t t = -1;
    hid_t ds = open_1d(s, "doc_offsets", H5P_DEFAULT, &len, &t, e);
    if (ds < 0) return QTX_ERR_INPUT;
    close_id(&t, H5Tclose);
    const qtx_shard_meta *m = &s->meta;
    int rc = QTX_OK;
    int64_t *off = NULL;
    if (len != m->n_docs + 1) {
        rc = qtx_fail(e, QTX_ERR_INPUT,
                      "shard %s: /doc_offsets has %" PRId64 " entries but n_docs is %" PRId64
                      " (it needs n_docs + 1): " REGEN,
                      s->path, len, m->n_docs);
        goto done;
    }
    off = qtx_malloc((size_t)len * sizeof *off);
    if (H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off) < 0) {
        rc = qtx_fail(e, QTX_ERR_INPUT,
                      "shard %s: cannot read /doc_offsets (%s): the file is %s; " REGEN, s->path,
                      q->checksum ? "chunk checksum mismatch" : q->desc,
                      q->checksum ? "corrupt" : "damaged");
        goto done;
    }
    for (int64_t i = 1; i < len; i++)
        if (off[i] < off[i - 1]) {
            rc = qtx_fail(e, QTX_ERR_INPUT,
                          "shard %s: /doc_offsets is not monotone: entry %" PRId64 " is %" PRId64
                          " after %" PRId64 ": " REGEN,
                          s->path, i, off[i], off[i - 1]);
            goto done;
        }
    if (off[0] != 0 || off[len - 1] != m->n_tokens)
        rc = qtx_fail(e, QTX_ERR_INPUT,
                      "shard %s: /doc_offsets runs from %" PRId64 " to %" PRId64
                      " but must run from 0 to n_tokens %" PRId64 ": " REGEN,
                      s->path, off[0], off[len - 1], m->n_tokens);
done:
    free(off);
    close_id(&ds, H5Dclose);
    return rc;
}

static int open_hdf5(qtx_shard *s, const h5_quiet *q, qtx_err *e) {
    qtx_shard_meta *m = &s->meta;
    if (H5Fis_hdf5(s->path) <= 0)
        return qtx_fail(e, QTX_ERR_INPUT, "shard %s: not an HDF5 file: " REGEN, s->path);
    /* Strong close: a dataset left with a failed chunk read must not keep the file (and the
     * library, at exit) open. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    s->file = H5Fopen(s->path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (s->file < 0)
        return qtx_fail(e, QTX_ERR_INPUT, "shard %s: cannot open as HDF5 (%s): " REGEN, s->path,
                        q->desc);

    /* format_version first: a future version may lay out everything else differently */
    int64_t v = 0;
    int rc = attr_int(s, "format_version", &v, e);
    if (rc) return rc;
    if (v != QTX_SHARD_FORMAT_VERSION)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "shard %s: format_version %" PRId64
                        " is not supported (this qtx reads version %d): " REGEN " by this qtx",
                        s->path, v, QTX_SHARD_FORMAT_VERSION);
    m->format_version = (int)v;
    int64_t eos = 0;
    if ((rc = attr_int(s, "vocab_size", &m->vocab_size, e)) ||
        (rc = attr_int(s, "eos_id", &eos, e)) ||
        (rc = attr_string(s, "tokenizer_hash", m->tokenizer_hash, sizeof m->tokenizer_hash, e)) ||
        (rc = attr_int(s, "n_tokens", &m->n_tokens, e)) ||
        (rc = attr_int(s, "n_docs", &m->n_docs, e)))
        return rc;
    if (m->vocab_size < 1 || m->vocab_size > ((int64_t)1 << 32) || eos < 0 ||
        eos >= m->vocab_size || m->n_tokens < 0 || m->n_docs < 0)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "shard %s: attributes out of range (vocab_size %" PRId64 ", eos_id %" PRId64
                        ", n_tokens %" PRId64 ", n_docs %" PRId64 "): " REGEN,
                        s->path, m->vocab_size, eos, m->n_tokens, m->n_docs);
    m->eos_id = (uint32_t)eos;

    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl >= 0)
        H5Pset_chunk_cache(dapl, H5D_CHUNK_CACHE_NSLOTS_DEFAULT, CHUNK_CACHE_BYTES,
                           H5D_CHUNK_CACHE_W0_DEFAULT);
    int64_t len = 0;
    hid_t t = -1;
    s->tokens = open_1d(s, "tokens", dapl >= 0 ? dapl : H5P_DEFAULT, &len, &t, e);
    close_id(&dapl, H5Pclose);
    if (s->tokens < 0) return QTX_ERR_INPUT;
    int is_unsigned = H5Tget_sign(t) == H5T_SGN_NONE;
    size_t size = H5Tget_size(t);
    close_id(&t, H5Tclose);
    if (!is_unsigned || (size != 2 && size != 4))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "shard %s: /tokens has a %zu-byte %s type; a shard holds uint16 or "
                        "uint32: " REGEN,
                        s->path, size, is_unsigned ? "unsigned" : "signed");
    if (size == 2 && m->vocab_size > 65536)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "shard %s: /tokens is uint16 but vocab_size is %" PRId64
                        ", which needs uint32: " REGEN,
                        s->path, m->vocab_size);
    if (len != m->n_tokens)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "shard %s: attribute n_tokens is %" PRId64 " but /tokens holds %" PRId64
                        " tokens: the file is damaged; " REGEN,
                        s->path, m->n_tokens, len);
    if ((rc = check_doc_offsets(s, q, e))) return rc;

    hsize_t one = 1;
    s->fspace = H5Dget_space(s->tokens);
    s->mspace = H5Screate_simple(1, &one, NULL);
    if (s->fspace < 0 || s->mspace < 0)
        return qtx_fail(e, QTX_ERR_RUNTIME, "shard %s: HDF5 could not create dataspaces", s->path);
    return QTX_OK;
}

int qtx_shard_open(const char *path, qtx_shard **out, qtx_err *e) {
    *out = NULL;
    if (access(path, R_OK) != 0)
        return qtx_fail(e, QTX_ERR_INPUT, "shard %s: cannot open: %s: check the data path", path,
                        strerror(errno));
    qtx_shard *s = qtx_calloc(1, sizeof *s);
    size_t n = strlen(path) + 1;
    s->path = memcpy(qtx_malloc(n), path, n);
    s->file = s->tokens = s->fspace = s->mspace = -1;
    h5_quiet q;
    quiet_begin(&q);
    int rc = open_hdf5(s, &q, e);
    quiet_end(&q);
    if (rc) {
        qtx_shard_close(s);
        return rc;
    }
    *out = s;
    return QTX_OK;
}

const qtx_shard_meta *qtx_shard_get_meta(const qtx_shard *s) {
    return &s->meta;
}
const char *qtx_shard_path(const qtx_shard *s) {
    return s->path;
}

/* ---- reading -------------------------------------------------------------------------------- */

int qtx_shard_read(qtx_shard *s, int64_t start, int64_t count, uint32_t *dst, qtx_err *e) {
    const qtx_shard_meta *m = &s->meta;
    if (start < 0 || count < 0 || start > m->n_tokens - count)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "shard %s: tokens [%" PRId64 ", %" PRId64
                        ") are outside the shard's %" PRId64 " tokens",
                        s->path, start, start + count, m->n_tokens);
    if (count == 0) return QTX_OK;

    hsize_t off = (hsize_t)start, cnt = (hsize_t)count;
    h5_quiet q;
    quiet_begin(&q);
    /* setting the extent also selects all of the memory space */
    int ok = H5Sselect_hyperslab(s->fspace, H5S_SELECT_SET, &off, NULL, &cnt, NULL) >= 0 &&
             H5Sset_extent_simple(s->mspace, 1, &cnt, NULL) >= 0 &&
             H5Dread(s->tokens, H5T_NATIVE_UINT32, s->mspace, s->fspace, H5P_DEFAULT, dst) >= 0;
    quiet_end(&q);
    if (!ok) {
        if (q.checksum)
            return qtx_fail(e, QTX_ERR_INPUT,
                            "shard %s: chunk checksum mismatch reading tokens [%" PRId64
                            ", %" PRId64 "): the file is corrupt; " REGEN,
                            s->path, start, start + count);
        return qtx_fail(e, QTX_ERR_INPUT,
                        "shard %s: cannot read tokens [%" PRId64 ", %" PRId64
                        ") (HDF5: %s): the file is damaged; " REGEN,
                        s->path, start, start + count, q.desc);
    }
    uint64_t vocab = (uint64_t)m->vocab_size;
    for (int64_t i = 0; i < count; i++)
        if (dst[i] >= vocab)
            return qtx_fail(e, QTX_ERR_INPUT,
                            "shard %s: token id %" PRIu32 " at position %" PRId64
                            " is >= vocab_size %" PRId64 ": the file is corrupt; " REGEN,
                            s->path, dst[i], start + i, m->vocab_size);
    return QTX_OK;
}

void qtx_shard_close(qtx_shard *s) {
    if (!s) return;
    h5_quiet q;
    quiet_begin(&q);
    close_id(&s->mspace, H5Sclose);
    close_id(&s->fspace, H5Sclose);
    close_id(&s->tokens, H5Dclose);
    close_id(&s->file, H5Fclose);
    quiet_end(&q);
    free(s->path);
    free(s);
}
