/* gguf_write.c: the GGUF v3 writer (gguf_write.h). Each key's type and value are serialized
 * when set (so a value is a byte string ready to write); tensors are recorded by reference.
 * qtx_gguf_write lays out header, metadata, tensor infos, padding and data, and writes them
 * through a temporary file that is fsynced and renamed into place. */
#include "gguf_write.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF writer stores integers and tensor data in host order (little-endian)"
#endif

enum { T_U32 = 4, T_I32 = 5, T_F32 = 6, T_BOOL = 7, T_STR = 8, T_ARR = 9 };

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n) c *= 2;
        b->p = qtx_realloc(b->p, c);
        b->cap = c;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) {
    put(b, &v, 4);
}
static void put_u64(buf *b, uint64_t v) {
    put(b, &v, 8);
}
static void put_str(buf *b, const char *s, size_t n) {
    put_u64(b, n);
    put(b, s, n);
}

typedef struct kv {
    char *key;
    buf value; /* type u32 and the value, serialized */
} kv;

typedef struct tensor {
    char name[64];
    int n_dims;
    int64_t ne[4];
    qtx_qtype type;
    const void *data;
    size_t nbytes;
} tensor;

struct qtx_gguf_writer {
    kv *kvs;
    int n_kv, kv_cap;
    tensor *tensors;
    int n_tensors, t_cap;
};

qtx_gguf_writer *qtx_gguf_writer_new(void) {
    return qtx_calloc(1, sizeof(qtx_gguf_writer));
}

void qtx_gguf_writer_free(qtx_gguf_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].value.p);
    }
    free(w->kvs);
    free(w->tensors);
    free(w);
}

/* The value buffer of key, emptied: an existing entry, or a new one at the end. */
static buf *value_of(qtx_gguf_writer *w, const char *key, uint32_t type) {
    QTX_CHECK(key && key[0], "GGUF key is empty");
    kv *k = NULL;
    for (int i = 0; i < w->n_kv && !k; i++)
        if (!strcmp(w->kvs[i].key, key)) k = &w->kvs[i];
    if (!k) {
        if (w->n_kv == w->kv_cap) {
            w->kv_cap = w->kv_cap ? 2 * w->kv_cap : 32;
            w->kvs = qtx_realloc(w->kvs, (size_t)w->kv_cap * sizeof *w->kvs);
        }
        k = &w->kvs[w->n_kv++];
        memset(k, 0, sizeof *k);
        k->key = strdup(key);
        QTX_CHECK(k->key, "out of memory");
    }
    k->value.n = 0;
    put_u32(&k->value, type);
    return &k->value;
}

void qtx_gguf_set_u32(qtx_gguf_writer *w, const char *key, uint32_t v) {
    put_u32(value_of(w, key, T_U32), v);
}

void qtx_gguf_set_i32(qtx_gguf_writer *w, const char *key, int32_t v) {
    put(value_of(w, key, T_I32), &v, 4);
}

void qtx_gguf_set_f32(qtx_gguf_writer *w, const char *key, float v) {
    put(value_of(w, key, T_F32), &v, 4);
}

void qtx_gguf_set_bool(qtx_gguf_writer *w, const char *key, int v) {
    const unsigned char c = v ? 1 : 0;
    put(value_of(w, key, T_BOOL), &c, 1);
}

void qtx_gguf_set_str(qtx_gguf_writer *w, const char *key, const char *s) {
    put_str(value_of(w, key, T_STR), s, strlen(s));
}

void qtx_gguf_set_arr_str(qtx_gguf_writer *w, const char *key, const char *const *s,
                          const size_t *lens, uint64_t n) {
    buf *b = value_of(w, key, T_ARR);
    put_u32(b, T_STR);
    put_u64(b, n);
    for (uint64_t i = 0; i < n; i++) put_str(b, s[i], lens ? lens[i] : strlen(s[i]));
}

void qtx_gguf_set_arr_i32(qtx_gguf_writer *w, const char *key, const int32_t *v, uint64_t n) {
    buf *b = value_of(w, key, T_ARR);
    put_u32(b, T_I32);
    put_u64(b, n);
    put(b, v, (size_t)n * 4);
}

void qtx_gguf_set_arr_f32(qtx_gguf_writer *w, const char *key, const float *v, uint64_t n) {
    buf *b = value_of(w, key, T_ARR);
    put_u32(b, T_F32);
    put_u64(b, n);
    put(b, v, (size_t)n * 4);
}

int qtx_gguf_add_tensor(qtx_gguf_writer *w, const char *name, int n_dims, const int64_t *ne,
                        qtx_qtype type, const void *data, size_t nbytes, qtx_err *e) {
    const size_t len = strlen(name);
    if (len == 0 || len > 63)
        return qtx_fail(e, QTX_ERR_INPUT, "GGUF tensor name '%s' is empty or longer than 63 bytes",
                        name);
    for (int i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return qtx_fail(e, QTX_ERR_INPUT, "GGUF tensor %s is added twice", name);
    const qtx_qtype_traits *tr = qtx_qtype_get(type);
    if (!tr)
        return qtx_fail(e, QTX_ERR_INPUT, "GGUF tensor %s: type %d is not supported", name,
                        (int)type);
    if (n_dims < 1 || n_dims > 4)
        return qtx_fail(e, QTX_ERR_INPUT, "GGUF tensor %s: %d dimensions (1 to 4 allowed)", name,
                        n_dims);
    int64_t numel = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 1 || ne[d] > INT64_MAX / numel)
            return qtx_fail(e, QTX_ERR_INPUT, "GGUF tensor %s: ne[%d] = %" PRId64 " is invalid",
                            name, d, ne[d]);
        numel *= ne[d];
    }
    if (ne[0] % tr->block_size)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "GGUF tensor %s: ne[0] = %" PRId64 " is not a multiple of %s's block size "
                        "%" PRId64,
                        name, ne[0], tr->name, tr->block_size);
    const uint64_t want = (uint64_t)(numel / tr->block_size) * tr->block_bytes;
    if (want != nbytes)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "GGUF tensor %s: %zu bytes of data, but its shape takes %" PRIu64
                        " bytes in %s",
                        name, nbytes, want, tr->name);
    if (w->n_tensors == w->t_cap) {
        w->t_cap = w->t_cap ? 2 * w->t_cap : 64;
        w->tensors = qtx_realloc(w->tensors, (size_t)w->t_cap * sizeof *w->tensors);
    }
    tensor *t = &w->tensors[w->n_tensors++];
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, len + 1);
    t->n_dims = n_dims;
    for (int d = 0; d < 4; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->type = type;
    t->data = data;
    t->nbytes = nbytes;
    return 0;
}

static uint64_t pad_to(uint64_t n) {
    return (n + QTX_GGUF_WRITE_ALIGN - 1) / QTX_GGUF_WRITE_ALIGN * QTX_GGUF_WRITE_ALIGN;
}

/* Header, metadata and tensor infos, padded to the alignment. */
static void build_header(const qtx_gguf_writer *w, buf *h) {
    put(h, "GGUF", 4);
    put_u32(h, 3);
    put_u64(h, (uint64_t)w->n_tensors);
    put_u64(h, (uint64_t)w->n_kv);
    for (int i = 0; i < w->n_kv; i++) {
        put_str(h, w->kvs[i].key, strlen(w->kvs[i].key));
        put(h, w->kvs[i].value.p, w->kvs[i].value.n);
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n_tensors; i++) {
        const tensor *t = &w->tensors[i];
        put_str(h, t->name, strlen(t->name));
        put_u32(h, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) put_u64(h, (uint64_t)t->ne[d]);
        put_u32(h, (uint32_t)t->type);
        put_u64(h, off);
        off = pad_to(off + t->nbytes);
    }
    static const unsigned char zeros[QTX_GGUF_WRITE_ALIGN];
    put(h, zeros, (size_t)(pad_to(h->n) - h->n));
}

uint64_t qtx_gguf_writer_size(const qtx_gguf_writer *w) {
    buf h = {0};
    build_header(w, &h);
    uint64_t n = h.n;
    free(h.p);
    for (int i = 0; i < w->n_tensors; i++) n += pad_to(w->tensors[i].nbytes);
    return n;
}

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static int fsync_parent(const char *path) {
    char *copy = strdup(path);
    QTX_CHECK(copy, "out of memory");
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int qtx_gguf_write(const qtx_gguf_writer *w, const char *path, int overwrite, qtx_err *e) {
    struct stat st;
    if (!overwrite && lstat(path, &st) == 0)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "%s exists; pass --force to replace it, or choose "
                        "another output path",
                        path);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return qtx_fail(e, QTX_ERR_INPUT, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return qtx_fail(e, QTX_ERR_INPUT, "%s: cannot create: %s", tmp, strerror(errno));
    buf h = {0};
    build_header(w, &h);
    int failed = write_all(fd, h.p, h.n);
    free(h.p);
    static const unsigned char zeros[QTX_GGUF_WRITE_ALIGN];
    for (int i = 0; i < w->n_tensors && !failed; i++) {
        const tensor *t = &w->tensors[i];
        failed = write_all(fd, t->data, t->nbytes);
        if (!failed) failed = write_all(fd, zeros, (size_t)(pad_to(t->nbytes) - t->nbytes));
    }
    if (!failed) failed = fsync(fd);
    const int err = errno;
    if (close(fd) && !failed) failed = -1;
    if (failed) {
        unlink(tmp);
        return qtx_fail(e, QTX_ERR_RUNTIME, "%s: writing failed: %s", tmp, strerror(err));
    }
    int rc;
    if (overwrite) {
        rc = rename(tmp, path);
    } else {
        rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE);
        if (rc && (errno == EINVAL || errno == ENOSYS)) { /* the file system lacks it */
            rc = link(tmp, path);
            if (!rc) unlink(tmp);
        }
    }
    if (rc) {
        const int err2 = errno;
        unlink(tmp);
        if (err2 == EEXIST)
            return qtx_fail(e, QTX_ERR_INPUT,
                            "%s exists; pass --force to replace it, or choose "
                            "another output path",
                            path);
        return qtx_fail(e, QTX_ERR_RUNTIME, "%s: cannot rename %s into place: %s", path, tmp,
                        strerror(err2));
    }
    if (fsync_parent(path))
        return qtx_fail(e, QTX_ERR_RUNTIME, "%s: fsync of its directory failed: %s", path,
                        strerror(errno));
    return 0;
}
