/* ckpt_read.c: opening a published checkpoint: the manifest and its CRC, the files it lists,
 * every rank's index (bounds-checked piece by piece), and the lazy mmap and per-piece CRC
 * check that every read goes through. Gathering a block is in ckpt_gather.c. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_internal.h"

/* ---- manifest --------------------------------------------------------------------------- */

/* "rank_%05d.bin" / "rank_%05d.json": the rank, *is_data; -1 for any other name. */
static int parse_file_name(const char *s, int *is_data) {
    if (strncmp(s, "rank_", 5) || strspn(s + 5, "0123456789") != 5) return -1;
    if (!strcmp(s + 10, ".bin"))
        *is_data = 1;
    else if (!strcmp(s + 10, ".json"))
        *is_data = 0;
    else
        return -1;
    return atoi(s + 5);
}

/* The version field when it is not 1 (so a newer checkpoint is named as such even when this
 * qtx cannot check its integrity); NULL when it is 1 or the text is not a qtx manifest. */
static const cJSON *other_version(const cJSON *m) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(m, "format");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "version");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, QTX_CKPT_FORMAT) || !cJSON_IsNumber(v) ||
        v->valuedouble == QTX_CKPT_VERSION)
        return NULL;
    return v;
}

static int version_error(const qtx_ckpt_reader *r, const cJSON *v, qtx_err *e) {
    return qtx_fail(e, QTX_ERR_INPUT,
                    "checkpoint %s: " CKPT_MANIFEST ": unknown format version %g; this qtx reads "
                    "version %d: use the qtx that wrote it",
                    r->dir, v->valuedouble, QTX_CKPT_VERSION);
}

/* manifest.crc32 holds 8 lowercase hex digits, two spaces, "manifest.json", a newline. */
static int parse_crc_text(const char *s, int64_t len, uint32_t *crc) {
    static const char tail[] = "  " CKPT_MANIFEST "\n";
    if (len != 8 + (int64_t)sizeof tail - 1 || strspn(s, "0123456789abcdef") != 8 ||
        strcmp(s + 8, tail))
        return -1;
    *crc = (uint32_t)strtoul(s, NULL, 16);
    return 0;
}

static int load_manifest(qtx_ckpt_reader *r, qtx_err *e) {
    char path[CKPT_PATH_MAX], cpath[CKPT_PATH_MAX];
    if (ckpt_path(path, r->dir, CKPT_MANIFEST) || ckpt_path(cpath, r->dir, CKPT_MANIFEST_CRC))
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: path too long", r->dir);
    struct stat st;
    if (stat(r->dir, &st) || !S_ISDIR(st.st_mode))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: no such directory; pass a step directory (e.g. "
                        "out/ckpt/step_00000010)",
                        r->dir);
    char *text = NULL, *ctext = NULL;
    int64_t len, clen;
    if (ckpt_read_all(path, CKPT_MANIFEST_MAX, &text, &len)) {
        if (errno == ENOENT)
            return qtx_fail(e, QTX_ERR_INPUT,
                            "checkpoint %s: " CKPT_MANIFEST " is missing: not a checkpoint, or one "
                            "whose writing did not finish; " CKPT_FIX,
                            r->dir);
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: cannot read " CKPT_MANIFEST ": %s; %s",
                        r->dir, errno == EFBIG ? "larger than 256 MiB" : strerror(errno), CKPT_FIX);
    }
    r->manifest = cJSON_ParseWithLength(text, (size_t)len);
    uint32_t want = 0, got = ckpt_crc32(0, text, (size_t)len);
    int rc = QTX_OK;
    if (ckpt_read_all(cpath, 64, &ctext, &clen)) {
        const cJSON *v = other_version(r->manifest);
        if (v)
            rc = version_error(r, v, e);
        else if (errno == ENOENT)
            rc = qtx_fail(e, QTX_ERR_INPUT,
                          "checkpoint %s: " CKPT_MANIFEST_CRC " is missing: the checkpoint is "
                          "incomplete; " CKPT_FIX,
                          r->dir);
        else
            rc = qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: " CKPT_MANIFEST_CRC ": %s; " CKPT_FIX,
                          r->dir, errno == EFBIG ? "not a CRC file" : strerror(errno));
    } else if (parse_crc_text(ctext, clen, &want)) {
        rc = qtx_fail(e, QTX_ERR_INPUT,
                      "checkpoint %s: " CKPT_MANIFEST_CRC " is not 8 hex digits and the file name: "
                      "the file is corrupt; " CKPT_FIX,
                      r->dir);
    } else if (want != got) {
        rc = qtx_fail(e, QTX_ERR_INPUT,
                      "checkpoint %s: " CKPT_MANIFEST ": CRC mismatch (expected 0x%08" PRIx32
                      ", got 0x%08" PRIx32 "): the file is corrupt; " CKPT_FIX,
                      r->dir, want, got);
    }
    free(text);
    free(ctext);
    if (rc) return rc;

    const cJSON *m = r->manifest;
    if (!cJSON_IsObject(m))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: " CKPT_MANIFEST " is not a JSON object; " CKPT_FIX, r->dir);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(m, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, QTX_CKPT_FORMAT))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: " CKPT_MANIFEST ": format is not '" QTX_CKPT_FORMAT
                        "': not a qtx checkpoint",
                        r->dir);
    const cJSON *v = other_version(m);
    if (v) return version_error(r, v, e);
    int64_t x;
    if (ckpt_json_i64(m, "version", QTX_CKPT_VERSION, QTX_CKPT_VERSION, &x))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: " CKPT_MANIFEST " has no integer version; " CKPT_FIX,
                        r->dir);
    if (ckpt_json_i64(m, "n_ranks", 1, 100000, &x))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: " CKPT_MANIFEST ": n_ranks is missing or not in [1, "
                        "100000]; " CKPT_FIX,
                        r->dir);
    r->n_ranks = (int)x;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files");
    if (!cJSON_IsArray(files) || cJSON_GetArraySize(files) < 2)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: " CKPT_MANIFEST
                        ": files is missing or lists no file; " CKPT_FIX,
                        r->dir);
    r->files = qtx_calloc((size_t)cJSON_GetArraySize(files), sizeof *r->files);
    /* seen[rank]: bit 1 data file listed, bit 2 index listed */
    unsigned char *seen = qtx_calloc((size_t)r->n_ranks, 1);
    const cJSON *f;
    cJSON_ArrayForEach(f, files) {
        ckpt_file *cf = &r->files[r->n_files];
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(f, "name");
        int64_t bytes, crc;
        int rank = cJSON_IsString(nm) ? parse_file_name(nm->valuestring, &cf->is_data) : -1;
        if (rank < 0 || rank >= r->n_ranks || (seen[rank] & (cf->is_data ? 1 : 2)) ||
            ckpt_json_i64(f, "bytes", 0, CKPT_JSON_INT_MAX, &bytes) ||
            ckpt_json_i64(f, "crc32", 0, UINT32_MAX, &crc)) {
            free(seen);
            return qtx_fail(e, QTX_ERR_INPUT,
                            "checkpoint %s: " CKPT_MANIFEST ": files[%d] is not {name: "
                            "rank_NNNNN.bin or .json of a rank < n_ranks, listed once, bytes, "
                            "crc32}; " CKPT_FIX,
                            r->dir, r->n_files);
        }
        seen[rank] |= cf->is_data ? 1 : 2;
        snprintf(cf->name, sizeof cf->name, "%s", nm->valuestring);
        cf->rank = rank;
        cf->bytes = bytes;
        cf->crc = (uint32_t)crc;
        cf->fd = -1;
        r->n_files++;
    }
    for (int k = 0; k < r->n_ranks; k++)
        if (seen[k] == 1 || seen[k] == 2) {
            free(seen);
            return qtx_fail(e, QTX_ERR_INPUT,
                            "checkpoint %s: " CKPT_MANIFEST " lists only one of rank_%05d.bin "
                            "and rank_%05d.json; " CKPT_FIX,
                            r->dir, k, k);
        }
    free(seen);
    return QTX_OK;
}

/* Every listed file exists with the listed size. */
static int check_files(const qtx_ckpt_reader *r, qtx_err *e) {
    for (int i = 0; i < r->n_files; i++) {
        const ckpt_file *f = &r->files[i];
        char path[CKPT_PATH_MAX];
        struct stat st;
        if (ckpt_path(path, r->dir, f->name))
            return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: path too long", r->dir);
        if (stat(path, &st)) {
            if (errno == ENOENT)
                return qtx_fail(
                    e, QTX_ERR_INPUT,
                    "checkpoint %s: %s is missing: the checkpoint is incomplete; " CKPT_FIX, r->dir,
                    f->name);
            return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: %s: %s; " CKPT_FIX, r->dir, f->name,
                            strerror(errno));
        }
        if (!S_ISREG(st.st_mode))
            return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: %s is not a regular file; " CKPT_FIX,
                            r->dir, f->name);
        if ((int64_t)st.st_size != f->bytes)
            return qtx_fail(e, QTX_ERR_INPUT,
                            "checkpoint %s: %s is %" PRId64 " bytes, the manifest says %" PRId64
                            ": the file is truncated or was replaced; " CKPT_FIX,
                            r->dir, f->name, (int64_t)st.st_size, f->bytes);
    }
    return QTX_OK;
}

/* ---- indexes ------------------------------------------------------------------------------ */

static int data_file_of(const qtx_ckpt_reader *r, int rank) {
    for (int i = 0; i < r->n_files; i++)
        if (r->files[i].rank == rank && r->files[i].is_data) return i;
    return -1;
}

static int copy_str(const cJSON *obj, const char *key, char *out, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) return -1;
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

static int parse_piece(qtx_ckpt_reader *r, const ckpt_file *jf, int df, int idx, const cJSON *pj,
                       qtx_err *e) {
    const ckpt_file *data = &r->files[df];
    ckpt_piece k;
    memset(&k, 0, sizeof k);
    const char *bad = NULL;
    int64_t crc = 0;
    char why[256] = "";
    if (!cJSON_IsObject(pj))
        bad = "is not an object";
    else if (copy_str(pj, "kind", k.p.kind, sizeof k.p.kind))
        bad = "has no kind of at most 15 characters";
    else if (copy_str(pj, "name", k.p.name, sizeof k.p.name))
        bad = "has no tensor name of at most 47 characters";
    else if (ckpt_json_i64_array(pj, "shape", 2, k.p.shape))
        bad = "has no shape [rows, cols]";
    else if (ckpt_json_i64_array(pj, "block", 4, k.p.block))
        bad = "has no block [r0, c0, nr, nc]";
    else if (ckpt_json_i64_array(pj, "flat", 2, k.p.flat))
        bad = "has no flat [f0, f1]";
    else if (ckpt_json_i64(pj, "offset", 0, CKPT_JSON_INT_MAX, &k.offset) ||
             ckpt_json_i64(pj, "bytes", 0, CKPT_JSON_INT_MAX, &k.bytes) ||
             ckpt_json_i64(pj, "crc32", 0, UINT32_MAX, &crc))
        bad = "has no integer offset, bytes and crc32";
    else if (ckpt_piece_check(&k.p, why, sizeof why))
        bad = why;
    else if (k.bytes != (k.p.flat[1] - k.p.flat[0]) * (int64_t)sizeof(float))
        bad = "has bytes != 4 (f1 - f0)";
    else if (k.offset % (int64_t)sizeof(float))
        bad = "has an offset that is not a multiple of 4";
    else if (k.offset > data->bytes - k.bytes) {
        snprintf(why, sizeof why,
                 "bytes [%" PRId64 ", %" PRId64 ") are past the end of %s (%" PRId64 " bytes)",
                 k.offset, k.offset + k.bytes, data->name, data->bytes);
        bad = why;
    }
    if (bad) {
        if (k.p.name[0])
            return qtx_fail(
                e, QTX_ERR_INPUT,
                "checkpoint %s: %s: piece %d (%s %s)%s%s: the index is corrupt; " CKPT_FIX, r->dir,
                jf->name, idx, k.p.kind, k.p.name, bad == why ? ": " : " ", bad);
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: %s: piece %d %s: the index is corrupt; " CKPT_FIX, r->dir,
                        jf->name, idx, bad);
    }
    k.crc = (uint32_t)crc;
    k.file = df;
    r->pieces[r->n_pieces++] = k;
    return QTX_OK;
}

static int load_index(qtx_ckpt_reader *r, const ckpt_file *jf, int *cap, qtx_err *e) {
    char path[CKPT_PATH_MAX];
    char *text;
    int64_t len;
    if (jf->bytes > CKPT_INDEX_MAX)
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: %s is larger than 1 GiB; " CKPT_FIX,
                        r->dir, jf->name);
    if (ckpt_path(path, r->dir, jf->name) || ckpt_read_all(path, jf->bytes, &text, &len))
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: cannot read %s: %s; " CKPT_FIX, r->dir,
                        jf->name, strerror(errno));
    uint32_t got = ckpt_crc32(0, text, (size_t)len);
    if (len != jf->bytes || got != jf->crc) {
        free(text);
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: %s: CRC mismatch (expected 0x%08" PRIx32
                        ", got 0x%08" PRIx32 "): the file is corrupt; " CKPT_FIX,
                        r->dir, jf->name, jf->crc, got);
    }
    cJSON *idx = cJSON_ParseWithLength(text, (size_t)len);
    free(text);
    int df = data_file_of(r, jf->rank);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(idx, "format");
    const cJSON *df_name = cJSON_GetObjectItemCaseSensitive(idx, "data_file");
    const cJSON *pieces = cJSON_GetObjectItemCaseSensitive(idx, "pieces");
    int64_t version, rank, data_bytes;
    if (!cJSON_IsObject(idx) || !cJSON_IsString(fmt) ||
        strcmp(fmt->valuestring, QTX_CKPT_FORMAT "-index") ||
        ckpt_json_i64(idx, "version", QTX_CKPT_VERSION, QTX_CKPT_VERSION, &version) ||
        ckpt_json_i64(idx, "rank", jf->rank, jf->rank, &rank) || df < 0 ||
        !cJSON_IsString(df_name) || strcmp(df_name->valuestring, r->files[df].name) ||
        ckpt_json_i64(idx, "data_bytes", r->files[df].bytes, r->files[df].bytes, &data_bytes) ||
        !cJSON_IsArray(pieces)) {
        cJSON_Delete(idx);
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: %s is not a version %d index of rank %d (format, version, "
                        "rank, data_file, data_bytes, pieces): the index is corrupt; " CKPT_FIX,
                        r->dir, jf->name, QTX_CKPT_VERSION, jf->rank);
    }
    int n = cJSON_GetArraySize(pieces), i = 0, rc = QTX_OK;
    if (r->n_pieces + n > *cap) {
        *cap = 2 * (r->n_pieces + n);
        r->pieces = qtx_realloc(r->pieces, (size_t)*cap * sizeof *r->pieces);
    }
    const cJSON *pj;
    cJSON_ArrayForEach(pj, pieces) {
        rc = parse_piece(r, jf, df, i++, pj, e);
        if (rc) break;
    }
    cJSON_Delete(idx);
    return rc;
}

static int piece_order(const void *a, const void *b) {
    const ckpt_piece *x = a, *y = b;
    int c = strcmp(x->p.kind, y->p.kind);
    if (!c) c = strcmp(x->p.name, y->p.name);
    if (!c) c = (x->file > y->file) - (x->file < y->file);
    if (!c) c = (x->offset > y->offset) - (x->offset < y->offset);
    return c;
}

int qtx_ckpt_open(qtx_ckpt_reader **rp, const char *dir, qtx_err *e) {
    *rp = NULL;
    qtx_ckpt_reader *r = qtx_calloc(1, sizeof *r);
    r->dir = strdup(dir);
    QTX_CHECK(r->dir, "out of memory");
    int rc = load_manifest(r, e);
    if (!rc) rc = check_files(r, e);
    int cap = 0;
    for (int i = 0; i < r->n_files && !rc; i++)
        if (!r->files[i].is_data) rc = load_index(r, &r->files[i], &cap, e);
    if (!rc) {
        if (r->n_pieces) qsort(r->pieces, (size_t)r->n_pieces, sizeof *r->pieces, piece_order);
        for (int i = 1; i < r->n_pieces && !rc; i++) {
            const ckpt_piece *a = &r->pieces[i - 1], *b = &r->pieces[i];
            if (strcmp(a->p.kind, b->p.kind) || strcmp(a->p.name, b->p.name) ||
                (a->p.shape[0] == b->p.shape[0] && a->p.shape[1] == b->p.shape[1]))
                continue;
            rc = qtx_fail(
                e, QTX_ERR_INPUT,
                "checkpoint %s: %s %s has shape [%" PRId64 ", %" PRId64 "] in %s and [%" PRId64
                ", %" PRId64 "] in %s: the checkpoint is inconsistent; " CKPT_FIX,
                r->dir, a->p.kind, a->p.name, a->p.shape[0], a->p.shape[1], r->files[a->file].name,
                b->p.shape[0], b->p.shape[1], r->files[b->file].name);
        }
    }
    if (rc) {
        qtx_ckpt_close(r);
        return rc;
    }
    *rp = r;
    return QTX_OK;
}

const cJSON *qtx_ckpt_meta(const qtx_ckpt_reader *r) {
    return r->manifest;
}

const char *qtx_ckpt_dir(const qtx_ckpt_reader *r) {
    return r->dir;
}

void qtx_ckpt_close(qtx_ckpt_reader *r) {
    if (!r) return;
    for (int i = 0; i < r->n_files; i++) {
        ckpt_file *f = &r->files[i];
        if (f->map) munmap((void *)f->map, (size_t)f->bytes);
        if (f->fd >= 0) close(f->fd);
    }
    free(r->files);
    free(r->pieces);
    cJSON_Delete(r->manifest);
    free(r->dir);
    free(r);
}

/* ---- data access ---------------------------------------------------------------------------- */

int ckpt_map_file(qtx_ckpt_reader *r, ckpt_file *f, qtx_err *e) {
    if (f->fd >= 0) return QTX_OK;
    char path[CKPT_PATH_MAX];
    struct stat st;
    if (ckpt_path(path, r->dir, f->name))
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: path too long", r->dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: cannot open %s: %s; " CKPT_FIX, r->dir,
                        f->name, strerror(errno));
    if (fstat(fd, &st) || (int64_t)st.st_size != f->bytes) {
        close(fd);
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: %s changed size since the checkpoint was opened (%" PRId64
                        " bytes, the manifest says %" PRId64 "); " CKPT_FIX,
                        r->dir, f->name, (int64_t)st.st_size, f->bytes);
    }
    if (f->bytes > 0) {
        void *m = mmap(NULL, (size_t)f->bytes, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int err = errno;
            close(fd);
            return qtx_fail(e, QTX_ERR_RUNTIME, "checkpoint %s: cannot map %s: %s", r->dir, f->name,
                            strerror(err));
        }
        f->map = m;
    }
    f->fd = fd;
    return QTX_OK;
}

int ckpt_check_piece(qtx_ckpt_reader *r, ckpt_piece *k, qtx_err *e) {
    if (k->checked) return QTX_OK;
    ckpt_file *f = &r->files[k->file];
    int rc = ckpt_map_file(r, f, e);
    if (rc) return rc;
    uint32_t got = k->bytes ? ckpt_crc32(0, f->map + k->offset, (size_t)k->bytes) : 0;
    if (got != k->crc)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: %s: CRC mismatch in piece %s %s (expected 0x%08" PRIx32
                        ", got 0x%08" PRIx32 "): the file is corrupt; " CKPT_FIX,
                        r->dir, f->name, k->p.kind, k->p.name, k->crc, got);
    k->checked = 1;
    return QTX_OK;
}

int ckpt_find_pieces(const qtx_ckpt_reader *r, const char *kind, const char *name, int *first) {
    int lo = 0, hi = r->n_pieces;
    while (lo < hi) { /* first piece >= (kind, name) */
        int mid = lo + (hi - lo) / 2;
        const ckpt_piece *k = &r->pieces[mid];
        int c = strcmp(k->p.kind, kind);
        if (!c) c = strcmp(k->p.name, name);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    int n = 0;
    while (lo + n < r->n_pieces && !strcmp(r->pieces[lo + n].p.kind, kind) &&
           !strcmp(r->pieces[lo + n].p.name, name))
        n++;
    *first = lo;
    return n;
}

int qtx_ckpt_has(const qtx_ckpt_reader *r, const char *kind, const char *name,
                 int64_t shape_out[2]) {
    int first;
    if (!ckpt_find_pieces(r, kind, name, &first)) return 0;
    if (shape_out) {
        shape_out[0] = r->pieces[first].p.shape[0];
        shape_out[1] = r->pieces[first].p.shape[1];
    }
    return 1;
}
