/* ckpt_store.h: the checkpoint store: a checkpoint is a directory of raw float32 files (one
 * per rank) with a JSON index each and one manifest, written by many ranks in parallel and
 * then published atomically (docs/FORMATS.md, "Checkpoints").
 *
 * This layer knows nothing of MPI or of the model: it stores "pieces", each a flat range of a
 * rectangular block of one named tensor, and reads back any block / flat range of a tensor by
 * gathering from whichever pieces hold it, so a run can resume on another TP / ZeRO layout.
 * The caller does the barriers: every rank writes and closes its pieces, then rank 0 writes
 * the manifest, publishes, and prunes.
 *
 *     step dir/  manifest.json  manifest.crc32  rank_00000.bin  rank_00000.json  ...
 *     ckpt root/ latest (the newest published step dir's base name)  step_00000010/ ...
 *
 * Errors: bad input (a missing, truncated or corrupt checkpoint, a tensor that is not in it,
 * an existing destination) is QTX_ERR_INPUT with one line naming the directory, the file and
 * the tensor; failing system calls while writing are QTX_ERR_RUNTIME. A reader is not
 * thread-safe (it caches which pieces passed their CRC check).
 */
#ifndef QTX_CKPT_STORE_H
#define QTX_CKPT_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "params.h"

#define QTX_CKPT_FORMAT "qtx-ckpt"
#define QTX_CKPT_VERSION 1
#define QTX_CKPT_KIND_MAX 16
#define QTX_CKPT_ALIGN 64 /* every piece starts at a multiple of this in its .bin file */

/* A piece: elements [flat[0], flat[1]) (row-major within the block) of block
 * (block[0], block[1], block[2], block[3]) = (r0, c0, nr, nc) of the tensor `name` of global
 * shape [shape[0], shape[1]] (shape[1] = 1 for 1-D tensors). A tensor split by rows over TP
 * rank r of tp is block (r R/tp, 0, R/tp, C); by columns (0, r C/tp, R, C/tp); a ZeRO shard
 * is a flat sub-range of such a block. Data is float32, little-endian. */
typedef struct qtx_ckpt_piece {
    char kind[QTX_CKPT_KIND_MAX];   /* "param", "adam_m", "adam_v" (any short string) */
    char name[QTX_TENSOR_NAME_MAX]; /* llama.cpp tensor name, e.g. "blk.3.attn_q" */
    int64_t shape[2];
    int64_t block[4];
    int64_t flat[2];
} qtx_ckpt_piece;

/* ---- write side (ckpt_write.c, ckpt_publish.c) ---------------------------------------------- */

typedef struct qtx_ckpt_writer qtx_ckpt_writer;

/* Rank `rank` starts writing into tmp_dir (created beforehand by the caller's rank 0, e.g.
 * out/ckpt/.tmp_step_00000010): tmp_dir/rank_%05d.bin now, tmp_dir/rank_%05d.json at close.
 * On failure *w is NULL. */
int qtx_ckpt_writer_open(qtx_ckpt_writer **w, const char *tmp_dir, int rank, qtx_err *e);

/* Appends one piece ((flat[1] - flat[0]) floats from data) at the next 64-byte boundary and
 * records it (with the zlib CRC-32 of its bytes) for the index. An empty range is allowed
 * (data may then be NULL). A malformed piece is QTX_ERR_INPUT; an I/O failure (disk full...)
 * QTX_ERR_RUNTIME, after which every later call on this writer fails too. */
int qtx_ckpt_write_piece(qtx_ckpt_writer *w, const qtx_ckpt_piece *p, const float *data,
                         qtx_err *e);

/* Writes the index, fsyncs data and index, and frees w (always, even on failure). */
int qtx_ckpt_writer_close(qtx_ckpt_writer *w, qtx_err *e);

/* Rank 0, after every rank closed its writer: writes tmp_dir/manifest.json from a copy of
 * `meta` (an object the caller builds: model config, step, loader state, layout...; may be
 * NULL) with "format", "version", "n_ranks" and "files" set by this function ("files": name,
 * bytes and CRC-32 of every rank_*.bin / rank_*.json of ranks 0..n_ranks-1, read back to
 * checksum them; a rank that wrote neither file is skipped, one that wrote only one is an
 * error), then tmp_dir/manifest.crc32 (the CRC-32 of manifest.json's bytes), and fsyncs
 * both and the directory. */
int qtx_ckpt_write_manifest(const char *tmp_dir, int n_ranks, const cJSON *meta, qtx_err *e);

/* Rank 0: renames tmp_dir (which must hold a manifest) to final_dir atomically, fsyncs the
 * parent, then atomically replaces parent/latest (latest.tmp + fsync + rename + fsync of the
 * directory) with final_dir's base name. Refuses (QTX_ERR_INPUT) when final_dir exists: a
 * published checkpoint is never overwritten. tmp_dir and final_dir must be on one file
 * system (normally siblings). */
int qtx_ckpt_publish(const char *tmp_dir, const char *final_dir, qtx_err *e);

/* Retention, rank 0, between checkpoints (never while ranks write a .tmp_* dir): deletes the
 * step_<digits> directories under ckpt_root beyond the newest `keep` (by step number; keep
 * <= 0 keeps them all), never the one named `protect` (a base name or a path; may be NULL)
 * and never the one `latest` names; also removes .tmp_* directories left by a crash. A step
 * directory is first renamed to .tmp_prune_<name>, so a crash mid-delete never leaves a
 * half-deleted step_* behind. */
int qtx_ckpt_prune(const char *ckpt_root, int keep, const char *protect, qtx_err *e);

/* The step directory `what` names, into dir_out (n bytes): "latest" (ckpt_root/latest; needs
 * ckpt_root), a step directory (holds manifest.json), a checkpoint root (holds latest) or a
 * run's out_dir (holds ckpt/latest). */
int qtx_ckpt_resolve(const char *what, const char *ckpt_root, char *dir_out, size_t n, qtx_err *e);

/* ---- read side (ckpt_read.c, ckpt_gather.c, ckpt_verify.c) ---------------------------------- */

typedef struct qtx_ckpt_reader qtx_ckpt_reader;

/* Opens a published checkpoint: checks manifest.json against manifest.crc32, its format and
 * version (1), that every listed file exists with the listed size, each rank_*.json index
 * against the manifest's CRC, and parses and bounds-checks every index. Data files are
 * mmap'ed on first use; each piece's CRC is checked the first time a read touches it. */
int qtx_ckpt_open(qtx_ckpt_reader **r, const char *dir, qtx_err *e);

/* The manifest object (the caller's meta plus format, version, n_ranks, files). */
const cJSON *qtx_ckpt_meta(const qtx_ckpt_reader *r);

/* The directory the reader was opened on. */
const char *qtx_ckpt_dir(const qtx_ckpt_reader *r);

/* Fills dst with the elements [f0, f1) (row-major) of block (r0, c0, nr, nc) of tensor
 * `name` of `kind`, gathering from any pieces that hold them (replicas: any holder). The
 * tensor's global shape must equal `shape`, and every element must be covered. Copies whole
 * row segments with memcpy. */
int qtx_ckpt_read(qtx_ckpt_reader *r, const char *kind, const char *name, const int64_t shape[2],
                  const int64_t block[4], int64_t f0, int64_t f1, float *dst, qtx_err *e);

/* Whether the checkpoint holds any piece of (kind, name); *shape_out (may be NULL) gets its
 * global shape. */
int qtx_ckpt_has(const qtx_ckpt_reader *r, const char *kind, const char *name,
                 int64_t shape_out[2]);

/* The i-th distinct (kind, name) the checkpoint holds, in (kind, name) order; 0 when i is
 * past the end. kind and name point into the reader. */
int qtx_ckpt_tensor_at(const qtx_ckpt_reader *r, int i, const char **kind, const char **name,
                       int64_t shape[2]);

void qtx_ckpt_close(qtx_ckpt_reader *r);

/* Checks every file's size and CRC and every piece's CRC; the error names the first bad one. */
int qtx_ckpt_verify(const char *dir, qtx_err *e);

/* Prints a human summary to out: format, step and the other meta fields, files and bytes,
 * tensors with global shapes and piece counts, totals per kind. */
int qtx_ckpt_info(const char *dir, FILE *out, qtx_err *e);

#endif
