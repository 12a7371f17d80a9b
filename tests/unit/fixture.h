/* fixture.h: reads the tensors of a PyTorch reference fixture (tests/reference/). */
#ifndef QTX_FIXTURE_H
#define QTX_FIXTURE_H

#include <stdint.h>

typedef struct qtx_fixture_tensor {
    char name[96];
    int dtype; /* 0 f32, 1 i32 */
    int ndim;
    int64_t dims[8];
    int64_t numel;
    void *data;
} qtx_fixture_tensor;

typedef struct qtx_fixture {
    int n;
    qtx_fixture_tensor *t;
} qtx_fixture;

/* Returns 0 on success; prints why and returns -1 on a missing or malformed file. */
int qtx_fixture_load(qtx_fixture *f, const char *path);
void qtx_fixture_free(qtx_fixture *f);
/* The tensor, or NULL. */
const qtx_fixture_tensor *qtx_fixture_get(const qtx_fixture *f, const char *name);

struct qtx_model_config;
struct qtx_param_layout;
/* The model config and batch shape stored in a model fixture. */
int qtx_fixture_model_config(const qtx_fixture *f, struct qtx_model_config *c, int *B, int *T);
/* Loads the model fixture at path with its config and batch shape: 0, or -1 after a failed
 * test check (unreadable, empty, no config), f then holding nothing. */
int qtx_fixture_open_model(qtx_fixture *f, const char *path, struct qtx_model_config *c, int *B,
                           int *T);
/* Copies tensors "<prefix><name>" for every tensor of layout l into buf (unsharded layout). */
int qtx_fixture_copy_tensors(const qtx_fixture *f, const char *prefix,
                             const struct qtx_param_layout *l, float *buf);

#endif
