/* infer_args.h: what `qtx generate` and `qtx eval` share: opening MODEL (a GGUF file or a
 * checkpoint directory) and the runtime options (threads, KV cache type, context). */
#ifndef QTX_INFER_ARGS_H
#define QTX_INFER_ARGS_H

#include "check.h"
#include "infer_model.h"

/* A directory is a checkpoint, anything else a GGUF file: read into huge pages, or mapped
 * when use_mmap (--mmap). */
int qtx_open_model(qtx_infer_model *m, const char *path, int use_mmap, qtx_err *e);

/* --kv-quant's value: "T" for keys and values, or "K,V", each f32, q8 or q4. Returns 0, or -1
 * (k and v untouched) for anything else. */
int qtx_parse_kv_types(const char *s, int *k, int *v);

#endif
