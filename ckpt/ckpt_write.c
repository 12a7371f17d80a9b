/* ckpt_write.c: the write side of the checkpoint store: one rank's data file and index
 * (qtx_ckpt_writer_*) and rank 0's manifest (qtx_ckpt_write_manifest). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ckpt_internal.h"

typedef struct written_piece {
    qtx_ckpt_piece p;
    int64_t offset, bytes;
    uint32_t crc;
} written_piece;

struct qtx_ckpt_writer {
    char *dir;
    int rank;
    int fd;
    int failed; /* an I/O error happened: the files are not a valid rank's output */
    int64_t pos;
    uint32_t file_crc; /* of every byte written so far: the manifest needs no read-back */
    char bin_name[32], json_name[32];
    int n, cap;
    written_piece *pieces;
};

static int io_fail(qtx_ckpt_writer *w, const char *file, const char *what, qtx_err *e) {
    int err = errno;
    w->failed = 1;
    return qtx_fail(
        e, QTX_ERR_RUNTIME,
        "checkpoint %s: %s %s: %s: check that the directory exists, is writable and has "
        "free space",
        w->dir, what, file, strerror(err));
}

int qtx_ckpt_writer_open(qtx_ckpt_writer **wp, const char *tmp_dir, int rank, qtx_err *e) {
    *wp = NULL;
    if (rank < 0 || rank > 99999)
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: rank %d is outside [0, 99999]", tmp_dir,
                        rank);
    qtx_ckpt_writer *w = qtx_calloc(1, sizeof *w);
    w->dir = strdup(tmp_dir);
    QTX_CHECK(w->dir, "out of memory");
    w->rank = rank;
    snprintf(w->bin_name, sizeof w->bin_name, "rank_%05d.bin", rank);
    snprintf(w->json_name, sizeof w->json_name, "rank_%05d.json", rank);
    char path[CKPT_PATH_MAX];
    if (ckpt_path(path, tmp_dir, w->bin_name)) {
        free(w->dir);
        free(w);
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: path too long", tmp_dir);
    }
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int rc = io_fail(w, w->bin_name, "cannot create", e);
        free(w->dir);
        free(w);
        return rc;
    }
    *wp = w;
    return QTX_OK;
}

int qtx_ckpt_write_piece(qtx_ckpt_writer *w, const qtx_ckpt_piece *p, const float *data,
                         qtx_err *e) {
    if (w->failed)
        return qtx_fail(e, QTX_ERR_RUNTIME,
                        "checkpoint %s: %s: an earlier write failed; this checkpoint is lost",
                        w->dir, w->bin_name);
    char why[256];
    if (ckpt_piece_check(p, why, sizeof why))
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: rank %d: piece %.*s %.*s: %s", w->dir,
                        w->rank, QTX_CKPT_KIND_MAX, p->kind, QTX_TENSOR_NAME_MAX, p->name, why);
    int64_t bytes = (p->flat[1] - p->flat[0]) * (int64_t)sizeof(float);
    QTX_CHECK(bytes == 0 || data, "qtx_ckpt_write_piece: no data for %s %s", p->kind, p->name);
    static const unsigned char zeros[QTX_CKPT_ALIGN];
    int64_t pad = (QTX_CKPT_ALIGN - w->pos % QTX_CKPT_ALIGN) % QTX_CKPT_ALIGN;
    if (pad && ckpt_write_all(w->fd, zeros, (size_t)pad))
        return io_fail(w, w->bin_name, "writing", e);
    w->file_crc = ckpt_crc32(w->file_crc, zeros, (size_t)pad);
    w->pos += pad;
    if (bytes && ckpt_write_all(w->fd, data, (size_t)bytes))
        return io_fail(w, w->bin_name, "writing", e);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->pieces = qtx_realloc(w->pieces, (size_t)w->cap * sizeof *w->pieces);
    }
    written_piece *k = &w->pieces[w->n++];
    memset(k, 0, sizeof *k);
    k->p = *p;
    k->offset = w->pos;
    k->bytes = bytes;
    k->crc = ckpt_crc32(0, data, (size_t)bytes);
    w->file_crc = (uint32_t)crc32_combine64(w->file_crc, k->crc, bytes);
    w->pos += bytes;
    return QTX_OK;
}

/* The index: a header object, then one piece per line, so `grep` and `jq` both work. */
static char *index_text(const qtx_ckpt_writer *w, size_t *len) {
    size_t cap = 512 + (size_t)w->n * 320, n = 0;
    char *s = qtx_malloc(cap);
    n += (size_t)snprintf(s, cap,
                          "{\"format\": \"%s-index\", \"version\": %d, \"rank\": %d, "
                          "\"data_file\": \"%s\", \"data_bytes\": %" PRId64
                          ", \"data_crc32\": %" PRIu32 ",\n\"pieces\": [",
                          QTX_CKPT_FORMAT, QTX_CKPT_VERSION, w->rank, w->bin_name, w->pos,
                          w->file_crc);
    for (int i = 0; i < w->n; i++) {
        const written_piece *k = &w->pieces[i];
        const int64_t *b = k->p.block;
        char line[512];
        /* kind and name were checked printable without quotes or backslashes */
        int m =
            snprintf(line, sizeof line,
                     "%s\n{\"kind\": \"%s\", \"name\": \"%s\", \"shape\": [%" PRId64 ", %" PRId64
                     "], \"block\": [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                     "], \"flat\": [%" PRId64 ", %" PRId64 "], \"offset\": %" PRId64
                     ", \"bytes\": %" PRId64 ", \"crc32\": %" PRIu32 "}",
                     i ? "," : "", k->p.kind, k->p.name, k->p.shape[0], k->p.shape[1], b[0], b[1],
                     b[2], b[3], k->p.flat[0], k->p.flat[1], k->offset, k->bytes, k->crc);
        QTX_CHECK(m > 0 && m < (int)sizeof line, "index line too long");
        if (n + (size_t)m + 8 > cap) {
            cap = 2 * cap + (size_t)m;
            s = qtx_realloc(s, cap);
        }
        memcpy(s + n, line, (size_t)m);
        n += (size_t)m;
    }
    if (n + 8 > cap) s = qtx_realloc(s, n + 8);
    memcpy(s + n, "\n]}\n", 5);
    *len = n + 4;
    return s;
}

int qtx_ckpt_writer_close(qtx_ckpt_writer *w, qtx_err *e) {
    if (!w) return QTX_OK;
    int rc = QTX_OK;
    if (w->failed) {
        rc = qtx_fail(e, QTX_ERR_RUNTIME,
                      "checkpoint %s: %s: an earlier write failed; this checkpoint is lost", w->dir,
                      w->bin_name);
    } else if (fsync(w->fd)) {
        rc = io_fail(w, w->bin_name, "syncing", e);
    }
    if (close(w->fd) && rc == QTX_OK) rc = io_fail(w, w->bin_name, "closing", e);
    if (rc == QTX_OK) {
        size_t len;
        char *text = index_text(w, &len);
        char path[CKPT_PATH_MAX];
        if (ckpt_path(path, w->dir, w->json_name) || ckpt_write_file_sync(path, text, len))
            rc = io_fail(w, w->json_name, "writing", e);
        free(text);
    }
    free(w->pieces);
    free(w->dir);
    free(w);
    return rc;
}

/* ---- the manifest --------------------------------------------------------------------------- */

static int add_file(cJSON *files, const char *dir, const char *name, int *found, qtx_err *e) {
    char path[CKPT_PATH_MAX];
    uint32_t crc;
    int64_t bytes;
    if (ckpt_path(path, dir, name)) return qtx_fail(e, QTX_ERR_INPUT, "%s: path too long", dir);
    if (ckpt_crc_file(path, &crc, &bytes)) {
        if (errno == ENOENT) {
            *found = 0;
            return QTX_OK;
        }
        return qtx_fail(e, QTX_ERR_RUNTIME, "checkpoint %s: cannot read %s back: %s", dir, name,
                        strerror(errno));
    }
    *found = 1;
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "name", name);
    cJSON_AddNumberToObject(f, "bytes", (double)bytes);
    cJSON_AddNumberToObject(f, "crc32", (double)crc);
    cJSON_AddItemToArray(files, f);
    return QTX_OK;
}

/* A rank's data file, described from its index (which the writer gave the file's size and
 * CRC as it wrote): reading hundreds of MB back just to checksum them would double the
 * save's I/O. The size is checked against the file system. */
static int add_data_file(cJSON *files, const char *dir, const char *bin, const char *json,
                         int *found, qtx_err *e) {
    char path[CKPT_PATH_MAX], jpath[CKPT_PATH_MAX];
    struct stat st;
    if (ckpt_path(path, dir, bin) || ckpt_path(jpath, dir, json))
        return qtx_fail(e, QTX_ERR_INPUT, "%s: path too long", dir);
    if (stat(path, &st)) {
        if (errno == ENOENT) {
            *found = 0;
            return QTX_OK;
        }
        return qtx_fail(e, QTX_ERR_RUNTIME, "checkpoint %s: %s: %s", dir, bin, strerror(errno));
    }
    *found = 1;
    if (stat(jpath, &st) && errno == ENOENT) return QTX_OK; /* the caller reports half a rank */
    if (stat(path, &st)) return qtx_fail(e, QTX_ERR_RUNTIME, "checkpoint %s: %s", dir, bin);
    char *text = NULL;
    int64_t len = 0, bytes = -1, crc = -1;
    cJSON *idx = NULL;
    if (ckpt_read_all(jpath, CKPT_INDEX_MAX, &text, &len) == 0 &&
        (idx = cJSON_ParseWithLength(text, (size_t)len)) != NULL) {
        ckpt_json_i64(idx, "data_bytes", 0, CKPT_JSON_INT_MAX, &bytes);
        ckpt_json_i64(idx, "data_crc32", 0, UINT32_MAX, &crc);
    }
    cJSON_Delete(idx);
    free(text);
    if (bytes < 0 || crc < 0 || bytes != (int64_t)st.st_size)
        return qtx_fail(e, QTX_ERR_RUNTIME,
                        "checkpoint %s: %s does not describe %s (%lld bytes on disk): its writer "
                        "did not close; call qtx_ckpt_write_manifest after every rank closed",
                        dir, json, bin, (long long)st.st_size);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "name", bin);
    cJSON_AddNumberToObject(f, "bytes", (double)bytes);
    cJSON_AddNumberToObject(f, "crc32", (double)crc);
    cJSON_AddItemToArray(files, f);
    return QTX_OK;
}

static void set_item(cJSON *obj, const char *key, cJSON *v) {
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    cJSON_AddItemToObject(obj, key, v);
}

int qtx_ckpt_write_manifest(const char *tmp_dir, int n_ranks, const cJSON *meta, qtx_err *e) {
    if (n_ranks < 1 || n_ranks > 100000)
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: n_ranks %d is outside [1, 100000]",
                        tmp_dir, n_ranks);
    if (meta && !cJSON_IsObject(meta))
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: the manifest's meta must be an object",
                        tmp_dir);
    /* format and version first (what a reader checks first), the caller's fields, then the
     * store's n_ranks and files; caller fields of those four names are replaced */
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "format", QTX_CKPT_FORMAT);
    cJSON_AddNumberToObject(m, "version", QTX_CKPT_VERSION);
    const cJSON *item;
    cJSON_ArrayForEach(item, meta) {
        if (!item->string || !strcmp(item->string, "format") || !strcmp(item->string, "version") ||
            !strcmp(item->string, "n_ranks") || !strcmp(item->string, "files"))
            continue;
        cJSON *copy = cJSON_Duplicate(item, 1);
        QTX_CHECK(copy, "out of memory");
        set_item(m, item->string, copy);
    }
    cJSON_AddNumberToObject(m, "n_ranks", n_ranks);
    cJSON *files = cJSON_AddArrayToObject(m, "files");
    int rc = QTX_OK, n_found = 0;
    for (int r = 0; r < n_ranks && rc == QTX_OK; r++) {
        char bin[32], json[32];
        snprintf(bin, sizeof bin, "rank_%05d.bin", r);
        snprintf(json, sizeof json, "rank_%05d.json", r);
        int has_bin = 0, has_json = 0;
        rc = add_data_file(files, tmp_dir, bin, json, &has_bin, e);
        if (rc == QTX_OK) rc = add_file(files, tmp_dir, json, &has_json, e);
        if (rc == QTX_OK && has_bin != has_json)
            rc = qtx_fail(e, QTX_ERR_RUNTIME,
                          "checkpoint %s: rank %d wrote %s but not %s: its writer did not close; "
                          "call qtx_ckpt_write_manifest after every rank closed",
                          tmp_dir, r, has_bin ? bin : json, has_bin ? json : bin);
        n_found += has_bin;
    }
    if (rc == QTX_OK && n_found == 0)
        rc = qtx_fail(e, QTX_ERR_RUNTIME,
                      "checkpoint %s: no rank_*.bin / rank_*.json of ranks 0..%d: nothing was "
                      "written",
                      tmp_dir, n_ranks - 1);
    if (rc == QTX_OK) {
        char *text = cJSON_Print(m);
        QTX_CHECK(text, "out of memory printing the manifest");
        size_t len = strlen(text);
        text = qtx_realloc(text, len + 2);
        memcpy(text + len, "\n", 2);
        len++;
        char crc_text[64];
        int crc_len = snprintf(crc_text, sizeof crc_text, "%08" PRIx32 "  " CKPT_MANIFEST "\n",
                               ckpt_crc32(0, text, len));
        char path[CKPT_PATH_MAX], cpath[CKPT_PATH_MAX];
        if (ckpt_path(path, tmp_dir, CKPT_MANIFEST) || ckpt_path(cpath, tmp_dir, CKPT_MANIFEST_CRC))
            rc = qtx_fail(e, QTX_ERR_INPUT, "%s: path too long", tmp_dir);
        else if (ckpt_write_file_sync(path, text, len) ||
                 ckpt_write_file_sync(cpath, crc_text, (size_t)crc_len) || ckpt_fsync_dir(tmp_dir))
            rc =
                qtx_fail(e, QTX_ERR_RUNTIME,
                         "checkpoint %s: writing the manifest: %s: check the disk's free space and "
                         "permissions",
                         tmp_dir, strerror(errno));
        free(text);
    }
    cJSON_Delete(m);
    return rc;
}
