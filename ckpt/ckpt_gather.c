/* ckpt_gather.c: qtx_ckpt_read: any block / flat range of a stored tensor, gathered from
 * whichever pieces hold it, one memcpy per (row, source piece) segment. This is what lets a
 * run resume on another TP split or ZeRO range than the one that saved it. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_internal.h"

/* What piece k holds of global row g: global columns [*ca, *cb) (empty when *ca >= *cb) and
 * the element index of column *ca within the piece's flat range. */
static void piece_row(const ckpt_piece *k, int64_t g, int64_t *ca, int64_t *cb, int64_t *at) {
    const int64_t *b = k->p.block, *f = k->p.flat;
    *ca = *cb = 0;
    if (g < b[0] || g >= b[0] + b[2]) return;
    int64_t row0 = (g - b[0]) * b[3]; /* flat index of the row's first element in the block */
    int64_t fa = f[0] > row0 ? f[0] : row0, fb = f[1] < row0 + b[3] ? f[1] : row0 + b[3];
    if (fa >= fb) return;
    *ca = b[1] + (fa - row0);
    *cb = b[1] + (fb - row0);
    *at = fa - f[0];
}

int qtx_ckpt_read(qtx_ckpt_reader *r, const char *kind, const char *name, const int64_t shape[2],
                  const int64_t block[4], int64_t f0, int64_t f1, float *dst, qtx_err *e) {
    qtx_ckpt_piece want;
    memset(&want, 0, sizeof want);
    char why[256];
    if (strlen(kind) >= sizeof want.kind || strlen(name) >= sizeof want.name)
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: read of %s %s: name too long", r->dir,
                        kind, name);
    memcpy(want.kind, kind, strlen(kind) + 1);
    memcpy(want.name, name, strlen(name) + 1);
    memcpy(want.shape, shape, sizeof want.shape);
    memcpy(want.block, block, sizeof want.block);
    want.flat[0] = f0;
    want.flat[1] = f1;
    if (ckpt_piece_check(&want, why, sizeof why))
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: read of %s %s: %s", r->dir, kind, name,
                        why);
    int first, n = ckpt_find_pieces(r, kind, name, &first);
    if (n == 0)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s has no %s %s: it was saved from another model or "
                        "optimizer (qtx ckpt info %s lists its tensors)",
                        r->dir, kind, name, r->dir);
    const int64_t *s = r->pieces[first].p.shape;
    if (s[0] != shape[0] || s[1] != shape[1])
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: %s %s has shape [%" PRId64 ", %" PRId64
                        "], the model wants [%" PRId64 ", %" PRId64
                        "]: it was saved from another model config",
                        r->dir, kind, name, s[0], s[1], shape[0], shape[1]);
    if (f0 == f1) return QTX_OK;

    /* candidates: the pieces that hold something of the destination's rows */
    const int64_t nc = block[3], row_lo = block[0] + f0 / nc, row_hi = block[0] + (f1 - 1) / nc;
    ckpt_piece **cand = qtx_malloc((size_t)n * sizeof *cand);
    int n_cand = 0;
    for (int i = 0; i < n; i++) {
        ckpt_piece *k = &r->pieces[first + i];
        const int64_t *b = k->p.block;
        if (k->p.flat[1] > k->p.flat[0] && b[0] <= row_hi && b[0] + b[2] > row_lo &&
            b[1] < block[1] + nc && b[1] + b[3] > block[1])
            cand[n_cand++] = k;
    }
    int rc = QTX_OK;
    ckpt_piece *last = NULL; /* the piece that served the previous segment: tried first */
    for (int64_t g = row_lo; g <= row_hi && rc == QTX_OK; g++) {
        int64_t i = g - block[0];
        int64_t la = f0 - i * nc > 0 ? f0 - i * nc : 0, lb = f1 - i * nc < nc ? f1 - i * nc : nc;
        int64_t cur = block[1] + la, end = block[1] + lb;
        float *out = dst + (i * nc + la - f0);
        while (cur < end) {
            ckpt_piece *best = NULL;
            int64_t best_a = 0, best_b = cur, best_at = 0, ca, cb, at = 0;
            if (last) {
                piece_row(last, g, &ca, &cb, &at);
                if (ca <= cur && cb >= end) best = last, best_a = ca, best_b = cb, best_at = at;
            }
            if (!best) /* the holder of cur that reaches furthest right */
                for (int c = 0; c < n_cand; c++) {
                    piece_row(cand[c], g, &ca, &cb, &at);
                    if (ca <= cur && cb > best_b)
                        best = cand[c], best_a = ca, best_b = cb, best_at = at;
                }
            if (!best) {
                int64_t gap_end = end; /* where the next holder starts */
                for (int c = 0; c < n_cand; c++) {
                    piece_row(cand[c], g, &ca, &cb, &at);
                    if (ca > cur && ca < cb && ca < gap_end) gap_end = ca;
                }
                rc = qtx_fail(e, QTX_ERR_INPUT,
                              "checkpoint %s has no data for %s %s rows [%" PRId64 ", %" PRId64
                              ") cols [%" PRId64 ", %" PRId64
                              "): no rank saved that part; " CKPT_FIX,
                              r->dir, kind, name, g, g + 1, cur, gap_end);
                break;
            }
            rc = ckpt_check_piece(r, best, e);
            if (rc) break;
            int64_t stop = best_b < end ? best_b : end;
            /* bytes, not float pointers: an index may place a piece at any offset */
            const unsigned char *src = r->files[best->file].map + best->offset +
                                       (best_at + (cur - best_a)) * (int64_t)sizeof(float);
            memcpy(out, src, (size_t)(stop - cur) * sizeof *out);
            out += stop - cur;
            cur = stop;
            last = best;
        }
    }
    free(cand);
    return rc;
}

int qtx_ckpt_tensor_at(const qtx_ckpt_reader *r, int i, const char **kind, const char **name,
                       int64_t shape[2]) {
    int seen = -1;
    for (int k = 0; k < r->n_pieces; k++) {
        const qtx_ckpt_piece *p = &r->pieces[k].p;
        if (k > 0 && !strcmp(p->kind, r->pieces[k - 1].p.kind) &&
            !strcmp(p->name, r->pieces[k - 1].p.name))
            continue;
        if (++seen == i) {
            *kind = p->kind;
            *name = p->name;
            shape[0] = p->shape[0];
            shape[1] = p->shape[1];
            return 1;
        }
    }
    return 0;
}
