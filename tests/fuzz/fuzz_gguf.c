/* fuzz_gguf.c: libFuzzer target for the GGUF reader (infer/gguf.h). Each input is written to a
 * memfd and opened by path, as a model file would be; a file that opens has every key read
 * through every accessor and every tensor's first and last data byte touched, so an accessor
 * reaching past what open checked shows up under ASan / UBSan. A refused file must give one
 * line that starts with the path. Not part of CTest: build and run it with run_fuzz_gguf.sh. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gguf.h"

static volatile uint64_t g_sink;

static void read_everything(const qtx_gguf *g) {
    qtx_err e = {0};
    uint64_t acc = qtx_gguf_alignment(g) + qtx_gguf_file_size(g);
    for (int i = 0; i < qtx_gguf_n_kv(g); i++) {
        int type, et;
        const char *key = qtx_gguf_key_at(g, i, &type, &et);
        if (!key || !qtx_gguf_has(g, key)) __builtin_trap();
        uint32_t u;
        int32_t i32;
        uint64_t u64, n;
        float f;
        int b;
        const char *s;
        size_t len;
        /* every getter on every key: the right one succeeds, the others fail cleanly */
        if (!qtx_gguf_get_u32(g, key, &u, &e)) acc += u;
        if (!qtx_gguf_get_i32(g, key, &i32, &e)) acc += (uint64_t)i32;
        if (!qtx_gguf_get_u64(g, key, &u64, &e)) acc += u64;
        if (!qtx_gguf_get_f32(g, key, &f, &e)) acc += (uint64_t)(f == f);
        if (!qtx_gguf_get_bool(g, key, &b, &e)) acc += (uint64_t)b;
        if (!qtx_gguf_get_str(g, key, &s, &len, &e)) acc += len + (uint64_t)(unsigned char)s[len];
        if (!qtx_gguf_get_arr(g, key, &et, &n, &e)) {
            if (et == QTX_GGUF_STR) {
                for (uint64_t k = 0; k < n; k++) {
                    if (qtx_gguf_arr_str(g, key, k, &s, &len)) __builtin_trap();
                    acc += len + (len ? (unsigned char)s[len - 1] : 0) + (unsigned char)s[len];
                }
            } else {
                const unsigned char *p = qtx_gguf_arr_data(g, key);
                if (!p) __builtin_trap();
                /* elements are 1, 2, 4 or 8 bytes: touch the last byte of the last one */
                const size_t esz = et == QTX_GGUF_U8 || et == QTX_GGUF_I8 || et == QTX_GGUF_BOOL ? 1
                                   : et == QTX_GGUF_U16 || et == QTX_GGUF_I16                    ? 2
                                   : et == QTX_GGUF_U64 || et == QTX_GGUF_I64 || et == QTX_GGUF_F64
                                       ? 8
                                       : 4;
                if (n) acc += p[0] + p[n * esz - 1];
            }
        }
    }
    const int nt = qtx_gguf_n_tensors(g);
    for (int i = 0; i < nt; i++) {
        const qtx_gguf_tensor *t = qtx_gguf_tensor_at(g, i);
        if (!t || qtx_gguf_find(g, t->name) != t || !t->nbytes) __builtin_trap();
        /* what open promised: inside the file, aligned, no two sharing a byte */
        if (t->offset % qtx_gguf_alignment(g) || t->offset + t->nbytes > qtx_gguf_file_size(g) ||
            (uintptr_t)t->data % (qtx_gguf_alignment(g) < 4096 ? qtx_gguf_alignment(g) : 4096))
            __builtin_trap();
        for (int j = 0; j < i; j++) {
            const qtx_gguf_tensor *u = qtx_gguf_tensor_at(g, j);
            if (t->offset < u->offset + u->nbytes && u->offset < t->offset + t->nbytes)
                __builtin_trap();
        }
        const unsigned char *p = t->data;
        acc += p[0] + p[t->nbytes - 1] + (uint64_t)t->ne[0] + strlen(t->name);
    }
    g_sink += acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz.gguf", MFD_CLOEXEC);
    if (fd < 0) return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t k = write(fd, data + off, size - off);
        if (k <= 0) break;
        off += (size_t)k;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    qtx_gguf *g = NULL;
    qtx_err e = {0};
    if (qtx_gguf_open(&g, path, &e) == 0) {
        read_everything(g);
        qtx_gguf_close(g);
    } else if (g || e.code != QTX_ERR_INPUT || strncmp(e.msg, path, strlen(path)) ||
               strchr(e.msg, '\n')) {
        __builtin_trap(); /* a refusal is one input error line naming the file */
    }
    close(fd);
    return 0;
}
