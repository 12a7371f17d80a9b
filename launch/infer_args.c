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

int qtx_parse_kv_type(const char *s) {
    if (!strcmp(s, "f32")) return QTX_KV_F32;
    if (!strcmp(s, "q8")) return QTX_KV_Q8;
    if (!strcmp(s, "q4")) return QTX_KV_Q4;
    return -1;
}
