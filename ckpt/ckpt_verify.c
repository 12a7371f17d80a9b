/* ckpt_verify.c: whole-checkpoint checks and summaries: qtx_ckpt_verify (every file's size
 * and CRC, every piece's CRC) and qtx_ckpt_info (what `qtx ckpt info` prints). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ckpt_internal.h"

static int by_offset(const void *a, const void *b) {
    const ckpt_piece *x = *(ckpt_piece *const *)a, *y = *(ckpt_piece *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Every piece of data file f, then the whole file's CRC. One pass over the bytes when the
 * pieces do not overlap (the file CRC is chained from the gaps and the pieces' CRCs). */
static int verify_data_file(qtx_ckpt_reader *r, ckpt_file *f, ckpt_piece **list, qtx_err *e) {
    int rc = ckpt_map_file(r, f, e);
    if (rc) return rc;
    int n = 0, fi = (int)(f - r->files);
    for (int i = 0; i < r->n_pieces; i++)
        if (r->pieces[i].file == fi) list[n++] = &r->pieces[i];
    if (n) qsort(list, (size_t)n, sizeof *list, by_offset);
    uint32_t crc = 0;
    int64_t pos = 0;
    int chained = 1;
    for (int i = 0; i < n; i++) {
        ckpt_piece *k = list[i];
        rc = ckpt_check_piece(r, k, e);
        if (rc) return rc;
        if (k->offset < pos) {
            chained = 0;
            continue;
        }
        crc = ckpt_crc32(crc, f->map + pos, (size_t)(k->offset - pos));
        crc = (uint32_t)crc32_combine64(crc, k->crc, (z_off64_t)k->bytes);
        pos = k->offset + k->bytes;
    }
    if (chained)
        crc = ckpt_crc32(crc, f->map + pos, (size_t)(f->bytes - pos));
    else
        crc = ckpt_crc32(0, f->map, (size_t)f->bytes);
    if (crc != f->crc)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: %s: CRC mismatch (expected 0x%08" PRIx32
                        ", got 0x%08" PRIx32 "): the file is corrupt; " CKPT_FIX,
                        r->dir, f->name, f->crc, crc);
    return QTX_OK;
}

/* A side file the manifest describes as {file, bytes, crc32} under `key` (the tokenizer a
 * training checkpoint carries for export and generation). */
static int verify_side_file(const qtx_ckpt_reader *r, const char *key, qtx_err *e) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(r->manifest, key);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "file");
    if (!cJSON_IsString(name)) return QTX_OK;
    int64_t bytes, crc_want;
    if (strchr(name->valuestring, '/') || ckpt_json_i64(o, "bytes", 0, CKPT_JSON_INT_MAX, &bytes) ||
        ckpt_json_i64(o, "crc32", 0, UINT32_MAX, &crc_want))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: " CKPT_MANIFEST
                        ": %s is not {file, bytes, crc32}; " CKPT_FIX,
                        r->dir, key);
    char path[CKPT_PATH_MAX];
    uint32_t crc;
    int64_t got;
    if (ckpt_path(path, r->dir, name->valuestring) || ckpt_crc_file(path, &crc, &got))
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: %s is missing or unreadable; " CKPT_FIX,
                        r->dir, name->valuestring);
    if (got != bytes || crc != (uint32_t)crc_want)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: %s: CRC mismatch or wrong size (%" PRId64
                        " bytes, the manifest says %" PRId64 "): the file is corrupt; " CKPT_FIX,
                        r->dir, name->valuestring, got, bytes);
    return QTX_OK;
}

int qtx_ckpt_verify(const char *dir, qtx_err *e) {
    qtx_ckpt_reader *r;
    int rc = qtx_ckpt_open(&r, dir, e); /* manifest CRC, file sizes, index CRCs */
    if (rc) return rc;
    ckpt_piece **list = qtx_malloc((size_t)(r->n_pieces ? r->n_pieces : 1) * sizeof *list);
    for (int i = 0; i < r->n_files && !rc; i++)
        if (r->files[i].is_data) rc = verify_data_file(r, &r->files[i], list, e);
    if (!rc) rc = verify_side_file(r, "tokenizer", e);
    free(list);
    qtx_ckpt_close(r);
    return rc;
}

/* ---- info ----------------------------------------------------------------------------------- */

static int is_store_key(const char *k) {
    return !strcmp(k, "format") || !strcmp(k, "version") || !strcmp(k, "n_ranks") ||
           !strcmp(k, "files");
}

static void print_meta(FILE *out, const cJSON *m) {
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        if (!v->string || is_store_key(v->string)) continue;
        char *s = cJSON_PrintUnformatted(v);
        if (!s) continue;
        if (strlen(s) > 160)
            fprintf(out, "%-12s %.157s...\n", v->string, s);
        else
            fprintf(out, "%-12s %s\n", v->string, s);
        free(s);
    }
}

/* 1696 B, 12.5 KiB, 3.2 GiB */
static const char *human(double bytes, char *buf, size_t n) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) bytes /= 1024, u++;
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

typedef struct kind_total {
    char kind[QTX_CKPT_KIND_MAX];
    int tensors;
    int64_t elements, stored;
} kind_total;

int qtx_ckpt_info(const char *dir, FILE *out, qtx_err *e) {
    qtx_ckpt_reader *r;
    int rc = qtx_ckpt_open(&r, dir, e);
    if (rc) return rc;
    int64_t bytes = 0;
    for (int i = 0; i < r->n_files; i++) bytes += r->files[i].bytes;
    fprintf(out, "checkpoint   %s\n", r->dir);
    fprintf(out, "format       %s version %d\n", QTX_CKPT_FORMAT, QTX_CKPT_VERSION);
    print_meta(out, r->manifest);
    fprintf(out, "ranks        %d\n", r->n_ranks);
    char h[32];
    fprintf(out, "files        %d, %" PRId64 " bytes (%s)\n", r->n_files, bytes,
            human((double)bytes, h, sizeof h));
    fprintf(out, "\n%-8s %-32s %-16s %6s %14s\n", "kind", "tensor", "shape", "pieces",
            "stored elems");
    kind_total *tot = qtx_calloc((size_t)(r->n_pieces ? r->n_pieces : 1), sizeof *tot);
    int n_kinds = 0;
    for (int i = 0; i < r->n_pieces;) {
        const ckpt_piece *k = &r->pieces[i];
        int j = i;
        int64_t stored = 0;
        while (j < r->n_pieces && !strcmp(r->pieces[j].p.kind, k->p.kind) &&
               !strcmp(r->pieces[j].p.name, k->p.name))
            stored += r->pieces[j].p.flat[1] - r->pieces[j].p.flat[0], j++;
        char shape[48];
        snprintf(shape, sizeof shape, "[%" PRId64 ", %" PRId64 "]", k->p.shape[0], k->p.shape[1]);
        fprintf(out, "%-8s %-32s %-16s %6d %14" PRId64 "\n", k->p.kind, k->p.name, shape, j - i,
                stored);
        int t = 0;
        while (t < n_kinds && strcmp(tot[t].kind, k->p.kind)) t++;
        if (t == n_kinds) memcpy(tot[n_kinds++].kind, k->p.kind, sizeof tot->kind);
        tot[t].tensors++;
        tot[t].elements += k->p.shape[0] * k->p.shape[1];
        tot[t].stored += stored;
        i = j;
    }
    fprintf(out, "\ntotals\n");
    for (int t = 0; t < n_kinds; t++)
        fprintf(out,
                "  %-8s %5d tensors %14" PRId64 " elements (%s), %" PRId64
                " stored counting replicas\n",
                tot[t].kind, tot[t].tensors, tot[t].elements,
                human((double)tot[t].elements * 4, h, sizeof h), tot[t].stored);
    free(tot);
    qtx_ckpt_close(r);
    return ferror(out)
               ? qtx_fail(e, QTX_ERR_RUNTIME, "checkpoint %s: writing the summary failed", dir)
               : QTX_OK;
}
