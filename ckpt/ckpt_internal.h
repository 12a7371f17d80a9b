/* ckpt_internal.h: what the checkpoint store's source files share and nobody else sees: the
 * reader's structure, piece validation, CRC-32 over 64-bit lengths, bounded JSON field
 * access, and the small file-system helpers (whole-file read, durable write, fsync). */
#ifndef QTX_CKPT_INTERNAL_H
#define QTX_CKPT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "ckpt_store.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the checkpoint store writes and maps little-endian float32 as is"
#endif

#define CKPT_MANIFEST "manifest.json"
#define CKPT_MANIFEST_CRC "manifest.crc32"
#define CKPT_LATEST "latest"
#define CKPT_PATH_MAX 4096
#define CKPT_MANIFEST_MAX ((int64_t)256 << 20) /* refuse to parse larger JSON files */
#define CKPT_INDEX_MAX ((int64_t)1 << 30)
#define CKPT_JSON_INT_MAX ((int64_t)1 << 53) /* integers a JSON double holds exactly */
#define CKPT_FIX "use another checkpoint (qtx ckpt verify checks one)"

/* One file the manifest lists. */
typedef struct ckpt_file {
    char name[32]; /* rank_%05d.bin or rank_%05d.json */
    int rank;
    int is_data;
    int64_t bytes;
    uint32_t crc;
    int fd;                   /* data files: -1 until first use */
    const unsigned char *map; /* data files: mmap of the whole file, NULL until first use */
} ckpt_file;

/* One piece of an index, located in its data file. */
typedef struct ckpt_piece {
    qtx_ckpt_piece p;
    int64_t offset, bytes;
    uint32_t crc;
    int file;    /* index into reader->files of the data file */
    int checked; /* its CRC was checked and matched */
} ckpt_piece;

struct qtx_ckpt_reader {
    char *dir;
    cJSON *manifest;
    int n_ranks;
    int n_files;
    ckpt_file *files;
    int n_pieces;
    ckpt_piece *pieces; /* sorted by (kind, name), then file and offset */
};

/* zlib's CRC-32 of n bytes continuing crc (0 to start), for any n. */
uint32_t ckpt_crc32(uint32_t crc, const void *buf, size_t n);

/* 0 when p is well formed; else -1 with the reason in why (a phrase, no trailing period). */
int ckpt_piece_check(const qtx_ckpt_piece *p, char *why, size_t n);

/* dir/name into out (CKPT_PATH_MAX); -1 when too long. */
int ckpt_path(char *out, const char *dir, const char *name);

/* Reads a whole regular file of at most max bytes into a NUL-terminated buffer (caller
 * frees). -1 with errno set (EFBIG when larger than max). */
int ckpt_read_all(const char *path, int64_t max, char **buf, int64_t *len);

/* Writes n bytes to fd at its current position, retrying short writes; -1 with errno. */
int ckpt_write_all(int fd, const void *buf, size_t n);

/* Creates (truncating) path, writes buf, fsyncs and closes; -1 with errno. */
int ckpt_write_file_sync(const char *path, const void *buf, size_t n);

/* fsync of a directory; -1 with errno. */
int ckpt_fsync_dir(const char *dir);

/* Removes a directory tree (a missing one is fine); 0 on success. */
int ckpt_remove_tree(const char *path);

/* The CRC-32 and size of a whole file (streamed); -1 with errno. */
int ckpt_crc_file(const char *path, uint32_t *crc, int64_t *bytes);

/* An integer field of obj in [lo, hi] (hi <= 2^53); -1 when absent, not a number, not whole
 * or out of range. */
int ckpt_json_i64(const cJSON *obj, const char *key, int64_t lo, int64_t hi, int64_t *out);

/* An integer array field of exactly n elements in [0, 2^53]; -1 otherwise. */
int ckpt_json_i64_array(const cJSON *obj, const char *key, int n, int64_t *out);

/* Maps data file f of r on first use; QTX_ERR_INPUT when it changed since open. */
int ckpt_map_file(qtx_ckpt_reader *r, ckpt_file *f, qtx_err *e);

/* Checks piece k's CRC (once; cached); QTX_ERR_INPUT naming file, piece and both CRCs. */
int ckpt_check_piece(qtx_ckpt_reader *r, ckpt_piece *k, qtx_err *e);

/* The pieces of (kind, name): *first and the count; 0 when there are none. */
int ckpt_find_pieces(const qtx_ckpt_reader *r, const char *kind, const char *name, int *first);

#endif
