/* gguf_write.h: builds a GGUF v3 file (the format infer/gguf.h reads; llama.cpp's model file).
 *
 * Collect metadata and tensors, then write once:
 *
 *     qtx_gguf_writer *w = qtx_gguf_writer_new();
 *     qtx_gguf_set_str(w, "general.architecture", "llama");
 *     qtx_gguf_set_u32(w, "llama.block_count", 4);
 *     qtx_gguf_add_tensor(w, "output_norm.weight", 1, (int64_t[]){64}, QTX_Q_F32, x, 256, &e);
 *     qtx_gguf_write(w, "model.gguf", 0, &e);
 *     qtx_gguf_writer_free(w);
 *
 * Keys are written in the order they were first set, tensors in the order they were added.
 * Alignment is GGUF's default, 32 (so general.alignment is not written): the data section
 * starts at a multiple of 32 and every tensor's data is zero-padded to a multiple of 32, the
 * last one too. Metadata values are copied when set; tensor data is only referenced, and must
 * stay valid until the write.
 */
#ifndef QTX_GGUF_WRITE_H
#define QTX_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "check.h"
#include "quant.h"

#define QTX_GGUF_WRITE_ALIGN 32

typedef struct qtx_gguf_writer qtx_gguf_writer;

qtx_gguf_writer *qtx_gguf_writer_new(void);
void qtx_gguf_writer_free(qtx_gguf_writer *w);

/* Setting a key that is already set replaces its value and keeps its position. */
void qtx_gguf_set_u32(qtx_gguf_writer *w, const char *key, uint32_t v);
void qtx_gguf_set_i32(qtx_gguf_writer *w, const char *key, int32_t v);
void qtx_gguf_set_f32(qtx_gguf_writer *w, const char *key, float v);
void qtx_gguf_set_bool(qtx_gguf_writer *w, const char *key, int v);
void qtx_gguf_set_str(qtx_gguf_writer *w, const char *key, const char *s);
/* n strings; lens[i] bytes of s[i] (lens NULL: each is NUL-terminated). */
void qtx_gguf_set_arr_str(qtx_gguf_writer *w, const char *key, const char *const *s,
                          const size_t *lens, uint64_t n);
void qtx_gguf_set_arr_i32(qtx_gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
void qtx_gguf_set_arr_f32(qtx_gguf_writer *w, const char *key, const float *v, uint64_t n);

/* A tensor of n_dims (1..4) dimensions ne (ggml order: ne[0] is contiguous, so a row-major
 * [rows, cols] matrix has ne = {cols, rows}) and type f32, f16, q4_0 or q8_0; data holds
 * nbytes, which must equal what the shape takes in that type. A bad shape, size, type or a
 * name that is empty, longer than 63 bytes or already added is QTX_ERR_INPUT. */
int qtx_gguf_add_tensor(qtx_gguf_writer *w, const char *name, int n_dims, const int64_t *ne,
                        qtx_qtype type, const void *data, size_t nbytes, qtx_err *e);

/* Bytes the file will have. */
uint64_t qtx_gguf_writer_size(const qtx_gguf_writer *w);

/* Writes path atomically: path.tmp.<pid> beside it, fsync, rename, fsync of the directory.
 * Without overwrite an existing path is refused (QTX_ERR_INPUT), also when it appears while
 * writing; with it, it is replaced. A failing system call is QTX_ERR_RUNTIME naming the path,
 * and leaves no temporary file behind. */
int qtx_gguf_write(const qtx_gguf_writer *w, const char *path, int overwrite, qtx_err *e);

#endif
