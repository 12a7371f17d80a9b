/* fixture.c: the reader behind fixture.h ("QTXF" v1, little-endian records). */
#include "fixture.h"

#include "params.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rd(FILE *fp, void *dst, size_t n) {
    return fread(dst, 1, n, fp) == n ? 0 : -1;
}

int qtx_fixture_load(qtx_fixture *f, const char *path) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "fixture: cannot open %s\n", path);
        return -1;
    }
    char magic[4];
    uint32_t version, n;
    if (rd(fp, magic, 4) || memcmp(magic, "QTXF", 4) || rd(fp, &version, 4) || version != 1 ||
        rd(fp, &n, 4) || n > 100000)
        goto bad;
    f->t = calloc(n, sizeof *f->t);
    for (uint32_t i = 0; i < n; i++) {
        qtx_fixture_tensor *t = &f->t[i];
        uint32_t len, dtype, ndim;
        if (rd(fp, &len, 4) || len >= sizeof t->name || rd(fp, t->name, len)) goto bad;
        if (rd(fp, &dtype, 4) || dtype > 1 || rd(fp, &ndim, 4) || ndim > 8) goto bad;
        t->dtype = (int)dtype;
        t->ndim = (int)ndim;
        t->numel = 1;
        for (uint32_t d = 0; d < ndim; d++) {
            if (rd(fp, &t->dims[d], 8) || t->dims[d] < 0 || t->dims[d] > (1 << 28)) goto bad;
            t->numel *= t->dims[d];
        }
        t->data = malloc((size_t)t->numel * 4 + 1);
        f->n = (int)i + 1;
        if (rd(fp, t->data, (size_t)t->numel * 4)) goto bad;
    }
    fclose(fp);
    return 0;
bad:
    fprintf(stderr, "fixture: %s is malformed\n", path);
    fclose(fp);
    qtx_fixture_free(f);
    return -1;
}

void qtx_fixture_free(qtx_fixture *f) {
    for (int i = 0; i < f->n; i++) free(f->t[i].data);
    free(f->t);
    memset(f, 0, sizeof *f);
}

const qtx_fixture_tensor *qtx_fixture_get(const qtx_fixture *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

int qtx_fixture_model_config(const qtx_fixture *f, qtx_model_config *c, int *B, int *T) {
    const qtx_fixture_tensor *ci = qtx_fixture_get(f, "config"),
                             *cf = qtx_fixture_get(f, "config_f");
    if (!ci || ci->numel != 10 || !cf || cf->numel != 2) return -1;
    const int32_t *v = ci->data;
    const float *fv = cf->data;
    memset(c, 0, sizeof *c);
    c->vocab_size = v[0];
    c->dim = v[1];
    c->n_layers = v[2];
    c->n_heads = v[3];
    c->n_kv_heads = v[4];
    c->ffn_dim = v[5];
    c->max_seq_len = v[6];
    c->tie_embeddings = v[7];
    *B = v[8];
    *T = v[9];
    c->rope_theta = fv[0];
    c->norm_eps = fv[1];
    return 0;
}

int qtx_fixture_copy_tensors(const qtx_fixture *f, const char *prefix, const qtx_param_layout *l,
                             float *buf) {
    char name[160];
    for (int i = 0; i < l->n_tensors; i++) {
        const qtx_tensor_desc *t = &l->tensors[i];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        const qtx_fixture_tensor *ft = qtx_fixture_get(f, name);
        if (!ft || ft->numel != t->numel || ft->dtype != 0) {
            fprintf(stderr, "fixture: tensor %s missing or of another size\n", name);
            return -1;
        }
        memcpy(buf + t->offset, ft->data, (size_t)t->numel * sizeof(float));
    }
    return 0;
}

int qtx_fixture_open_model(qtx_fixture *f, const char *path, qtx_model_config *c, int *B, int *T) {
    T_CHECK(qtx_fixture_load(f, path) == 0, "cannot load %s", path);
    if (!f->n) return -1;
    const int rc = qtx_fixture_model_config(f, c, B, T);
    T_CHECK(rc == 0, "%s: no config", path);
    if (rc) qtx_fixture_free(f);
    return rc ? -1 : 0;
}
