/* infer_args.c: opening a model for generate and eval. */
#include "infer_args.h"

#include <string.h>
#include <sys/stat.h>

#include "ckpt_infer.h"

int qtx_open_model(qtx_infer_model *m, const char *path, int use_mmap, qtx_err *e) {
    struct stat st;
    if (stat(path, &st))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "%s: no such file or directory; give a GGUF file (qtx export) or a "
                        "checkpoint directory",
                        path);
    const size_t n = strlen(path);
    const int latest_file = n >= 6 && !strcmp(path + n - 6, "latest");
    return S_ISDIR(st.st_mode) || latest_file
               ? qtx_infer_load_ckpt(m, path, e)
               : qtx_infer_load_gguf(m, path, use_mmap ? QTX_GGUF_MAP : QTX_GGUF_COPY, e);
}

static int kv_type(const char *s, size_t n) {
    for (int t = 0; t < QTX_KV_N_TYPES; t++) {
        const char *name = qtx_kv_type_name((qtx_kv_type)t);
        if (strlen(name) == n && !strncmp(s, name, n)) return t;
    }
    return -1;
}

int qtx_parse_kv_types(const char *s, int *k, int *v) {
    const char *comma = strchr(s, ',');
    const int a = kv_type(s, comma ? (size_t)(comma - s) : strlen(s));
    const int b = comma ? kv_type(comma + 1, strlen(comma + 1)) : a;
    if (a < 0 || b < 0) return -1;
    *k = a;
    *v = b;
    return 0;
}
