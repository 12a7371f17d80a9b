/* ckpt_util.c: the helpers the checkpoint store's writer and reader share: CRC-32, piece
 * validation, bounded JSON integers, whole-file reads and durable writes. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ckpt_internal.h"

uint32_t ckpt_crc32(uint32_t crc, const void *buf, size_t n) {
    if (n == 0) return crc;
    return (uint32_t)crc32_z(crc, (const Bytef *)buf, (z_size_t)n);
}

static int name_ok(const char *s, size_t cap) {
    size_t n = strnlen(s, cap);
    if (n == 0 || n == cap) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '\\' || s[i] == 0x7f) return 0;
    return 1;
}

int ckpt_piece_check(const qtx_ckpt_piece *p, char *why, size_t n) {
    const int64_t *s = p->shape, *b = p->block, *f = p->flat;
    if (!name_ok(p->kind, sizeof p->kind)) {
        snprintf(why, n, "kind is empty, longer than %d characters or not printable",
                 QTX_CKPT_KIND_MAX - 1);
        return -1;
    }
    if (!name_ok(p->name, sizeof p->name)) {
        snprintf(why, n, "tensor name is empty, longer than %d characters or not printable",
                 QTX_TENSOR_NAME_MAX - 1);
        return -1;
    }
    /* R * C * 4 must fit in int64: every offset and length below is then exact */
    if (s[0] <= 0 || s[1] <= 0 || s[0] > INT64_MAX / 4 / s[1]) {
        snprintf(why, n, "shape [%" PRId64 ", %" PRId64 "] is not positive or too large", s[0],
                 s[1]);
        return -1;
    }
    if (b[0] < 0 || b[1] < 0 || b[2] <= 0 || b[3] <= 0 || b[0] > s[0] - b[2] ||
        b[1] > s[1] - b[3]) {
        snprintf(why, n,
                 "block (%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                 ") is empty or outside shape [%" PRId64 ", %" PRId64 "]",
                 b[0], b[1], b[2], b[3], s[0], s[1]);
        return -1;
    }
    if (f[0] < 0 || f[1] < f[0] || f[1] > b[2] * b[3]) {
        snprintf(why, n,
                 "flat range [%" PRId64 ", %" PRId64 ") is outside its block of %" PRId64
                 " elements",
                 f[0], f[1], b[2] * b[3]);
        return -1;
    }
    return 0;
}

int ckpt_path(char *out, const char *dir, const char *name) {
    int k = snprintf(out, CKPT_PATH_MAX, "%s/%s", dir, name);
    if (k < 0 || k >= CKPT_PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int ckpt_read_all(const char *path, int64_t max, char **buf, int64_t *len) {
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st)) goto fail;
    if (!S_ISREG(st.st_mode)) {
        errno = EISDIR;
        goto fail;
    }
    if ((int64_t)st.st_size > max) {
        errno = EFBIG;
        goto fail;
    }
    char *b = qtx_malloc((size_t)st.st_size + 1);
    int64_t got = 0;
    while (got < (int64_t)st.st_size) {
        ssize_t k = read(fd, b + got, (size_t)(st.st_size - got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            free(b);
            goto fail;
        }
        if (k == 0) break; /* shrank under us: return what is there */
        got += k;
    }
    b[got] = 0;
    close(fd);
    *buf = b;
    *len = got;
    return 0;
fail:;
    int err = errno;
    close(fd);
    errno = err;
    return -1;
}

int ckpt_write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t k = write(fd, p, chunk);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int ckpt_write_file_sync(const char *path, const void *buf, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    if (ckpt_write_all(fd, buf, n) || fsync(fd)) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return close(fd);
}

int ckpt_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}

int ckpt_crc_file(const char *path, uint32_t *crc, int64_t *bytes) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t cap = (size_t)4 << 20;
    unsigned char *b = qtx_malloc(cap);
    uint32_t c = 0;
    int64_t total = 0;
    for (;;) {
        ssize_t k = read(fd, b, cap);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            int err = errno;
            free(b);
            close(fd);
            errno = err;
            return -1;
        }
        if (k == 0) break;
        c = ckpt_crc32(c, b, (size_t)k);
        total += k;
    }
    free(b);
    close(fd);
    *crc = c;
    *bytes = total;
    return 0;
}

int ckpt_json_i64(const cJSON *obj, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < (double)lo || d > (double)hi ||
        fabs(d) > (double)CKPT_JSON_INT_MAX)
        return -1;
    *out = (int64_t)d;
    return 0;
}

int ckpt_json_i64_array(const cJSON *obj, const char *key, int n, int64_t *out) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return -1;
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        if (!cJSON_IsNumber(v)) return -1;
        double d = v->valuedouble;
        if (!isfinite(d) || d != floor(d) || d < 0 || d > (double)CKPT_JSON_INT_MAX) return -1;
        out[i++] = (int64_t)d;
    }
    return 0;
}
