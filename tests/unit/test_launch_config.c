/* test_launch_config.c: the YAML config system: schema coverage of qtx_config, defaults,
 * every value type (YAML and --set), print -> load round trips, the exact text of each
 * parse and validation error, and the `qtx train` argument parser. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_schema.h"
#include "testutil.h"
#include "train_args.h"

static void write_file(const char *name, const char *text) {
    FILE *f = fopen(name, "wb");
    if (!f) {
        perror(name);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

/* A minimal valid file: everything else at its default. */
#define BASE "data:\n  train: data/tiny/train_*.h5\n"

/* Loads `yaml` (written to t.yaml) with sets and checks the result: ok when expected is NULL,
 * else exactly that message. */
static void expect_load(int line, const char *yaml, const char *const *sets, int n_sets,
                        const char *expected) {
    write_file("t.yaml", yaml);
    qtx_config c;
    qtx_err e = {0};
    const int rc = qtx_config_load(&c, "t.yaml", sets, n_sets, &e);
    if (!expected) {
        T_CHECK(rc == QTX_OK, "line %d: expected ok, got %s", line, e.msg);
        return;
    }
    T_CHECK(rc == QTX_ERR_INPUT, "line %d: expected an error, got rc %d", line, rc);
    T_CHECK(strcmp(e.msg, expected) == 0, "line %d:\n  got:      %s\n  expected: %s", line, e.msg,
            expected);
    T_CHECK(!strchr(e.msg, '\n'), "line %d: message has a newline", line);
}
#define OK(yaml) expect_load(__LINE__, yaml, NULL, 0, NULL)
#define ERR(yaml, msg) expect_load(__LINE__, yaml, NULL, 0, msg)
#define SET_ERR(yaml, set, msg)                                                                    \
    do {                                                                                           \
        const char *s_[] = {set};                                                                  \
        expect_load(__LINE__, yaml, s_, 1, msg);                                                   \
    } while (0)

static void test_schema_covers_config(void) {
    const struct {
        const char *name;
        size_t offset, size;
        int fields;
    } secs[] = {
        {"model", offsetof(qtx_config, model), sizeof(qtx_model_config), 10},
        {"data", offsetof(qtx_config, data), sizeof(qtx_data_config), 6},
        {"optim", offsetof(qtx_config, optim), sizeof(qtx_optim_config), 11},
        {"train", offsetof(qtx_config, train), sizeof(qtx_train_config), 10},
        {"parallel", offsetof(qtx_config, parallel), sizeof(qtx_parallel_config), 6},
        {"device", offsetof(qtx_config, device), sizeof(qtx_device_config), 4},
    };
    T_CHECK(qtx_cfg_n_sections == 6, "%d sections", qtx_cfg_n_sections);
    int total = 0;
    for (int s = 0; s < 6; s++) {
        /* Entries of this section sorted by offset must tile the struct, leaving only the
         * padding an 8-byte field needs; with the field count, a new field without an entry
         * fails here. */
        int idx[QTX_CFG_MAX_KEYS], n = 0;
        for (int i = 0; i < qtx_cfg_n_keys; i++)
            if (!strcmp(qtx_cfg_keys[i].section, secs[s].name)) idx[n++] = i;
        for (int a = 1; a < n; a++)
            for (int b = a; b > 0 && qtx_cfg_keys[idx[b]].offset < qtx_cfg_keys[idx[b - 1]].offset;
                 b--) {
                const int t = idx[b];
                idx[b] = idx[b - 1];
                idx[b - 1] = t;
            }
        T_CHECK(n == secs[s].fields,
                "section %s: %d schema entries, struct has %d fields "
                "(update launch/config_schema.c and this test)",
                secs[s].name, n, secs[s].fields);
        size_t at = secs[s].offset;
        for (int j = 0; j < n; j++) {
            const qtx_cfg_key *k = &qtx_cfg_keys[idx[j]];
            const size_t gap = k->offset - at;
            T_CHECK(k->offset >= at && (gap == 0 || (gap < 8 && k->offset % 8 == 0)),
                    "%s at offset %zu: %zu unexplained bytes before it (a field without a "
                    "schema entry?)",
                    k->path, k->offset, gap);
            at = k->offset + k->size;
            char want[64];
            snprintf(want, sizeof want, "%s.%s", k->section, k->name);
            T_STREQ(k->path, want);
            T_CHECK(k->meaning && k->meaning[0] && !strchr(k->meaning, '|'), "%s meaning", k->path);
        }
        T_CHECK(secs[s].offset + secs[s].size - at < 8, "section %s: %zu bytes uncovered at end",
                secs[s].name, secs[s].offset + secs[s].size - at);
        total += n;
    }
    T_CHECK(total == qtx_cfg_n_keys, "%d keys in sections, %d in the table", total, qtx_cfg_n_keys);
    for (int i = 0; i < qtx_cfg_n_keys; i++)
        for (int j = i + 1; j < qtx_cfg_n_keys; j++)
            T_CHECK(strcmp(qtx_cfg_keys[i].path, qtx_cfg_keys[j].path) != 0, "duplicate %s",
                    qtx_cfg_keys[i].path);
}

static void test_defaults(void) {
    qtx_config c;
    qtx_config_defaults(&c);
    T_CHECK(c.model.vocab_size == 32000 && c.model.dim == 768 && c.model.n_layers == 12, "model");
    T_CHECK(c.model.n_heads == 12 && c.model.n_kv_heads == 12 && c.model.ffn_dim == 2048, "heads");
    T_CHECK(c.model.max_seq_len == 1024 && c.model.rope_theta == 10000.0f, "rope");
    T_CHECK(c.model.norm_eps == 1e-5f && c.model.tie_embeddings == 0, "norm");
    T_STREQ(c.data.train, "");
    T_STREQ(c.data.val, "");
    T_CHECK(c.data.seq_len == 1024 && c.data.global_batch == 32 && c.data.micro_batch == 4, "data");
    T_CHECK(c.data.seed == 1234, "data seed");
    T_CHECK(c.optim.lr == 3e-4 && c.optim.min_lr == 3e-5 && c.optim.warmup_steps == 100, "lr");
    T_CHECK(c.optim.schedule == QTX_SCHED_COSINE && c.optim.decay_frac == 0.2, "schedule");
    T_CHECK(c.optim.beta1 == 0.9 && c.optim.beta2 == 0.95 && c.optim.eps == 1e-8, "adam");
    T_CHECK(c.optim.weight_decay == 0.1 && c.optim.grad_clip == 1.0 && c.optim.max_skips == 5,
            "wd");
    T_CHECK(c.train.steps == 1000 && c.train.seed == 1337 && c.train.log_every == 1, "train");
    T_STREQ(c.train.out_dir, "runs/default");
    T_STREQ(c.train.resume, "");
    T_CHECK(c.train.eval_every == 0 && c.train.eval_batches == 8 && c.train.ckpt_every == 0,
            "eval");
    T_CHECK(c.train.ckpt_keep == 2 && c.train.peak_flops == 0.0, "ckpt");
    T_CHECK(c.parallel.dp == 0 && c.parallel.tp == 1 && c.parallel.pp == 1, "parallel");
    T_CHECK(c.parallel.zero == 0 && c.parallel.micro_batches == 0, "zero");
    T_CHECK(c.device.type == QTX_DEVICE_CPU && c.device.threads == 0 &&
                c.device.precision == QTX_PRECISION_FP32,
            "device");

    /* Defaults plus data.train is a valid config. */
    OK(BASE);
    /* Empty sections (every key commented out) are fine. */
    OK(BASE "parallel:\n  # tp: 2\ndevice:\n");
}

static void test_types(void) {
    qtx_config c;
    qtx_err e = {0};
    const char *sets[] = {
        "data.train=a/b_*.h5",
        "model.dim=1536",
        "data.seed=18446744073709551615",
        "optim.lr=1e-3",
        "model.norm_eps=2.5e-6",
        "model.tie_embeddings=true",
        "optim.schedule=wsd",
        "parallel.dp=4",
        "device.type=cuda",
        "data.val=",
        "train.resume=latest",
        "optim.grad_clip=0",
        "train.seed=+7",
        "parallel.micro_batches=2",
        "data.global_batch=32",
    };
    T_CHECK(qtx_config_load(&c, NULL, sets, 15, &e) == QTX_OK, "%s", e.msg);
    T_STREQ(c.data.train, "a/b_*.h5");
    T_CHECK(c.model.dim == 1536, "dim %d", c.model.dim);
    T_CHECK(c.data.seed == UINT64_MAX, "seed %" PRIu64, c.data.seed);
    T_CHECK(c.optim.lr == 1e-3 && c.model.norm_eps == 2.5e-6f, "reals");
    T_CHECK(c.model.tie_embeddings == 1 && c.optim.schedule == QTX_SCHED_WSD, "bool/enum");
    T_CHECK(c.parallel.dp == 4 && c.device.type == QTX_DEVICE_CUDA, "dp/device");
    T_STREQ(c.data.val, "");
    T_STREQ(c.train.resume, "latest");
    T_CHECK(c.optim.grad_clip == 0.0 && c.train.seed == 7, "clip/seed");

    /* YAML: quoted and plain scalars alike; auto; later --set wins over the file. */
    write_file("types.yaml", "data:\n  train: 'q.h5'\n  val: \"v # not a comment\"\n"
                             "parallel:\n  dp: auto\n  zero: 1\noptim:\n  beta2: .99\n"
                             "  schedule: \"linear\"\nmodel:\n  tie_embeddings: false\n"
                             "  rope_theta: 5e5\n");
    const char *over[] = {"optim.beta2=0.98", "optim.beta2=0.97"};
    T_CHECK(qtx_config_load(&c, "types.yaml", over, 2, &e) == QTX_OK, "%s", e.msg);
    T_STREQ(c.data.train, "q.h5");
    T_STREQ(c.data.val, "v # not a comment");
    T_CHECK(c.parallel.dp == 0 && c.parallel.zero == 1, "auto");
    T_CHECK(c.optim.beta2 == 0.97 && c.optim.schedule == QTX_SCHED_LINEAR, "beta2 %g",
            c.optim.beta2);
    T_CHECK(c.model.rope_theta == 500000.0f, "rope_theta %g", (double)c.model.rope_theta);
}

/* print -> load gives the identical config, and printing it again gives the same text. */
static void round_trip(const qtx_config *c, const char *what) {
    FILE *f = fopen("rt.yaml", "wb");
    qtx_config_print(c, f);
    fclose(f);
    qtx_config back;
    qtx_err e = {0};
    const int rc = qtx_config_load(&back, "rt.yaml", NULL, 0, &e);
    T_CHECK(rc == QTX_OK, "%s: printed config does not load: %s", what, e.msg);
    if (rc) return;
    T_CHECK(memcmp(c, &back, sizeof back) == 0, "%s: config differs after print and load", what);
    for (int i = 0; i < qtx_cfg_n_keys; i++) {
        const qtx_cfg_key *k = &qtx_cfg_keys[i];
        T_CHECK(!memcmp((const char *)c + k->offset, (const char *)&back + k->offset, k->size),
                "%s: %s differs", what, k->path);
    }
    char *t1 = NULL, *t2 = NULL;
    size_t n1 = 0, n2 = 0;
    FILE *a = open_memstream(&t1, &n1), *b = open_memstream(&t2, &n2);
    qtx_config_print(c, a);
    qtx_config_print(&back, b);
    fclose(a);
    fclose(b);
    T_CHECK(n1 == n2 && !memcmp(t1, t2, n1), "%s: second print differs", what);
    free(t1);
    free(t2);
}

static void test_round_trip(const char *src) {
    qtx_config c;
    qtx_config_defaults(&c);
    strcpy(c.data.train, "data/tiny/train_*.h5");
    round_trip(&c, "defaults");

    /* Every field away from its default, strings that YAML would misread unquoted. */
    c.model = (qtx_model_config){4100, 320, 5, 10, 5, 1000, 333, 12345.678f, 1.2345678e-6f, 1};
    strcpy(c.data.train, "  lead: 'x' \"y\" \\ #z\t\xc3\xa9\xe2\x80\xa8\x7f\x01 ");
    strcpy(c.data.val, "true");
    c.data.seq_len = 300;
    c.data.global_batch = 40;
    c.data.micro_batch = 5;
    c.data.seed = UINT64_MAX - 1;
    c.optim = (qtx_optim_config){0.000123456789012345,
                                 1.1e-5,
                                 7,
                                 QTX_SCHED_CONSTANT,
                                 0.3333333333333333,
                                 0.875,
                                 0.9990000000000001,
                                 3e-9,
                                 0.05,
                                 2.5,
                                 9};
    c.train = (qtx_train_config){77, 0, "123", 3, 11, 4, 13, 6, "null", 4.48e11};
    c.parallel = (qtx_parallel_config){4, 5, 5, 2, 2, "1,2,2"};
    c.device = (qtx_device_config){QTX_DEVICE_STAGED, 3, QTX_PRECISION_BF16, 0};
    qtx_err e = {0};
    /* The device keys: staged with bf16 rounded per product, cuda with the bf16 copy, cpu. */
    const qtx_parallel_config par = c.parallel;
    c.parallel.tp = c.parallel.pp = 1;
    memset(c.parallel.stage_layers, 0, sizeof c.parallel.stage_layers);
    T_CHECK(qtx_config_validate(&c, NULL, &e) == QTX_OK, "%s", e.msg);
    round_trip(&c, "staged bf16, per product");
    c.device = (qtx_device_config){QTX_DEVICE_CUDA, 3, QTX_PRECISION_BF16, 1};
    T_CHECK(qtx_config_validate(&c, NULL, &e) == QTX_OK, "%s", e.msg);
    round_trip(&c, "cuda bf16");
    c.parallel = par;
    c.device = (qtx_device_config){QTX_DEVICE_CPU, 3, QTX_PRECISION_FP32, 1};
    T_CHECK(qtx_config_validate(&c, NULL, &e) == QTX_OK, "%s", e.msg);
    round_trip(&c, "every field");

    c.parallel.dp = 0; /* prints as auto */
    c.parallel.micro_batches = 0;
    c.model.rope_theta = 1e9f;
    c.optim.lr = 10.0;
    c.optim.min_lr = 0.0;
    c.model.norm_eps = 1e-30f;
    T_CHECK(qtx_config_validate(&c, NULL, &e) == QTX_OK, "%s", e.msg);
    round_trip(&c, "auto and extremes");

    /* The committed example configs load and survive the trip. */
    char path[4200];
    snprintf(path, sizeof path, "%s/configs/tiny.yaml", src);
    T_CHECK(qtx_config_load(&c, path, NULL, 0, &e) == QTX_OK, "tiny: %s", e.msg);
    T_CHECK(c.model.dim == 256 && c.model.n_kv_heads == 4 && c.train.eval_every == 50, "tiny");
    T_STREQ(c.train.out_dir, "runs/tiny");
    round_trip(&c, "tiny");
    snprintf(path, sizeof path, "%s/configs/small.yaml", src);
    T_CHECK(qtx_config_load(&c, path, NULL, 0, &e) == QTX_OK, "small: %s", e.msg);
    T_CHECK(c.model.dim == 512 && c.model.vocab_size == 8192 && c.data.seq_len == 512, "small");
    round_trip(&c, "small");
}

static void test_parse_errors(void) {
    ERR("model:\n  dim: 256\n  dimm: 3\n" BASE,
        "t.yaml:3:3: unknown key 'model.dimm' (did you mean 'model.dim'?)");
    ERR(BASE "model:\n  seq_len: 3\n",
        "t.yaml:4:3: unknown key 'model.seq_len' (did you mean 'data.seq_len'?)");
    ERR(BASE "optim:\n  learning_rate: 3\n",
        "t.yaml:4:3: unknown key 'optim.learning_rate'; the keys of optim are lr, min_lr, "
        "warmup_steps, schedule, decay_frac, beta1, beta2, eps, weight_decay, grad_clip, "
        "max_skips");
    ERR("modle:\n  dim: 3\n", "t.yaml:1:1: unknown section 'modle' (did you mean 'model'?)");
    ERR(BASE "lr: 3\n", "t.yaml:3:1: unknown section 'lr' (did you mean 'lr' under 'optim:'?)");
    ERR("stuff:\n  a: 1\n", "t.yaml:1:1: unknown section 'stuff'; the sections are model, data, "
                            "optim, train, parallel, device");
    ERR("model:\n  dim: abc\n", "t.yaml:2:8: model.dim: expected an integer, got 'abc'");
    ERR("model:\n  dim: 0\n", "t.yaml:2:8: model.dim: 0 is out of range [1, 65536]");
    ERR("model:\n  dim: -5\n", "t.yaml:2:8: model.dim: -5 is out of range [1, 65536]");
    ERR("model:\n  dim: 99999999999999999999\n",
        "t.yaml:2:8: model.dim: 99999999999999999999 is out of range [1, 65536]");
    ERR("model:\n  dim: 256.0\n", "t.yaml:2:8: model.dim: expected an integer, got '256.0' "
                                  "(write 256)");
    ERR("model:\n  dim: 1e3\n",
        "t.yaml:2:8: model.dim: expected an integer, got '1e3' (write 1000)");
    ERR("model:\n  dim: 2.5\n", "t.yaml:2:8: model.dim: expected an integer, got '2.5'");
    ERR("model:\n  dim: 256x\n", "t.yaml:2:8: model.dim: expected an integer, got '256x'");
    ERR("model:\n  dim: 0x100\n", "t.yaml:2:8: model.dim: expected an integer, got '0x100'");
    ERR("model:\n  dim: 0256\n",
        "t.yaml:2:8: model.dim: expected a decimal integer without leading zeros, got '0256'");
    ERR("model:\n  dim:\n", "t.yaml:2:7: model.dim: expected an integer, got an empty value");
    ERR("model:\n  dim: [1, 2]\n", "t.yaml:2:8: model.dim: expected an integer, got a list");
    ERR("model:\n  dim: {a: 1}\n", "t.yaml:2:8: model.dim: expected an integer, got a mapping");
    ERR("data:\n  seed: -1\n",
        "t.yaml:2:9: data.seed: -1 is out of range [0, 18446744073709551615]");
    ERR("data:\n  seed: 18446744073709551616\n",
        "t.yaml:2:9: data.seed: 18446744073709551616 is out of range [0, 18446744073709551615]");
    ERR("optim:\n  lr: fast\n", "t.yaml:2:7: optim.lr: expected a number, got 'fast'");
    ERR("optim:\n  lr: 0\n", "t.yaml:2:7: optim.lr: 0 is out of range (0, 10]");
    ERR("optim:\n  lr: .nan\n", "t.yaml:2:7: optim.lr: expected a number, got '.nan'");
    ERR("optim:\n  lr: inf\n", "t.yaml:2:7: optim.lr: expected a number, got 'inf'");
    ERR("optim:\n  lr: 1e999\n", "t.yaml:2:7: optim.lr: 1e999 is out of range (0, 10]");
    ERR("optim:\n  beta2: 1\n", "t.yaml:2:10: optim.beta2: 1 is out of range [0, 1)");
    ERR("model:\n  rope_theta: 1e-50\n",
        "t.yaml:2:15: model.rope_theta: 1e-50 does not fit a 32-bit float");
    ERR("model:\n  tie_embeddings: yes\n",
        "t.yaml:2:19: model.tie_embeddings: expected true or false, got 'yes'");
    ERR("model:\n  tie_embeddings: 1\n",
        "t.yaml:2:19: model.tie_embeddings: expected true or false, got '1'");
    ERR("optim:\n  schedule: cosin\n",
        "t.yaml:2:13: optim.schedule: 'cosin' is not one of cosine, linear, wsd, constant (did "
        "you mean 'cosine'?)");
    ERR("optim:\n  schedule: step\n",
        "t.yaml:2:13: optim.schedule: 'step' is not one of cosine, linear, wsd, constant");
    ERR("optim:\n  schedule: [cosine]\n",
        "t.yaml:2:13: optim.schedule: expected one of cosine, linear, wsd, constant, got a list");
    ERR("parallel:\n  dp: many\n",
        "t.yaml:2:7: parallel.dp: expected an integer or auto, got 'many'");
    ERR("data:\n  val: ~\n",
        "t.yaml:2:8: data.val: '~' is YAML's null, not a string; write \"\" for an empty value");
    ERR("data:\n  train: [a, b]\n", "t.yaml:2:10: data.train: expected a string, got a list");

    char big[1200 + 32];
    strcpy(big, "data:\n  train: ");
    memset(big + strlen(big), 'x', 1100);
    strcpy(big + 15 + 1100, "\n");
    ERR(big, "t.yaml:2:10: data.train: value is 1100 bytes long; the limit is 1023");

    ERR("model:\n  dim: 256\n  dim: 512\n",
        "t.yaml:3:3: duplicate key 'model.dim' (first set at line 2); keep one");
    ERR("model:\n  dim: 256\ndata:\n  seq_len: 8\nmodel:\n  n_layers: 2\n",
        "t.yaml:5:1: duplicate section 'model' (first at line 1); merge the two into one");
    ERR("model: 5\n", "t.yaml:1:8: section 'model' must hold 'key: value' lines, got '5'; put "
                      "its keys on the lines below 'model:', indented");
    ERR("model:\n  - dim\n", "t.yaml:2:3: section 'model' must hold 'key: value' lines, got a "
                             "list; put its keys on the lines below 'model:', indented");
    ERR("- a\n- b\n", "t.yaml:1:1: expected sections like 'model:' and 'data:' at the top level, "
                      "got a list");
    ERR("hello\n", "t.yaml:1:1: expected sections like 'model:' and 'data:' at the top level, "
                   "got 'hello'");
    ERR("model:\n  dim: 2\n n_layers: 3\n",
        "t.yaml:3:2: YAML syntax error: did not find expected key (while parsing a block "
        "mapping); check the indentation, colons and quotes there");
    ERR("model:\n\tdim: 2\n", "t.yaml:2:1: YAML syntax error: found character that cannot start "
                              "any token (a tab); indent with spaces, not tabs");
    ERR("data:\n  train: \"abc\n", "t.yaml:3:1: YAML syntax error: found unexpected end of "
                                   "stream (while scanning a quoted scalar); check the "
                                   "indentation, colons and quotes there");
    ERR("data:\n  train: \xc3\x28\n",
        "t.yaml:2:11: cannot read the YAML: invalid trailing UTF-8 octet; save the file as UTF-8 "
        "text");
    ERR(BASE "---\nmodel:\n  dim: 8\n", "t.yaml:4:1: a second YAML document; a config is one "
                                        "document, so remove the '---' and merge it");
    ERR("", "t.yaml: the file is empty; a config needs at least 'data:' with 'train:' (see "
            "configs/tiny.yaml)");
    ERR("# nothing but a comment\n\n", "t.yaml: the file is empty; a config needs at least "
                                       "'data:' with 'train:' (see configs/tiny.yaml)");

    ERR(BASE "  seed: *nope\n", "t.yaml:3:9: YAML error: found undefined alias; define an anchor "
                                "(&name) before its alias (*name)");
    ERR("data:\n  train: &a x\n  val: &a y\n",
        "t.yaml:3:8: YAML error: duplicate anchor (first at line 2); rename one of them");
    OK("data:\n  train: &p x\n  val: *p\n"); /* anchors and aliases are plain YAML */
    ERR("Model:\n  dim: 8\n", "t.yaml:1:1: unknown section 'Model' (did you mean 'model'?)");
    ERR("device:\n  type: CUDA\n",
        "t.yaml:2:9: device.type: 'CUDA' is not one of cpu, cuda, staged (did you mean 'cuda'?)");

    /* More than 1 MiB is not a config (but exactly 1 MiB is read). */
    char *huge = malloc((1u << 20) + 64);
    memset(huge, ' ', 1u << 20);
    memcpy(huge + (1u << 20) - strlen(BASE) - 1, "\n" BASE, strlen(BASE) + 1);
    huge[1u << 20] = '\0';
    T_CHECK(strlen(huge) == 1u << 20, "huge length");
    write_file("t.yaml", huge);
    qtx_config c;
    qtx_err e = {0};
    T_CHECK(qtx_config_load(&c, "t.yaml", NULL, 0, &e) == QTX_OK, "1 MiB: %s", e.msg);
    strcat(huge, " ");
    write_file("t.yaml", huge);
    T_CHECK(qtx_config_load(&c, "t.yaml", NULL, 0, &e) == QTX_ERR_INPUT, "over 1 MiB");
    T_STREQ(e.msg, "'t.yaml' is larger than 1 MiB; a config is a short YAML file, so check that "
                   "this is the right file");
    free(huge);

    T_CHECK(qtx_config_load(&c, "missing.yaml", NULL, 0, &e) == QTX_ERR_INPUT, "missing");
    T_STREQ(e.msg, "cannot open 'missing.yaml': No such file or directory");
    mkdir("adir.yaml", 0755);
    T_CHECK(qtx_config_load(&c, "adir.yaml", NULL, 0, &e) == QTX_ERR_INPUT, "directory");
    T_STREQ(e.msg, "cannot read 'adir.yaml': Is a directory");
    rmdir("adir.yaml");
    if (geteuid() != 0) { /* root reads anything */
        write_file("locked.yaml", BASE);
        chmod("locked.yaml", 0);
        T_CHECK(qtx_config_load(&c, "locked.yaml", NULL, 0, &e) == QTX_ERR_INPUT, "unreadable");
        T_STREQ(e.msg, "cannot open 'locked.yaml': Permission denied");
        unlink("locked.yaml");
    }
}

static void test_set_errors(void) {
    SET_ERR(BASE, "model.dim=abc",
            "--set model.dim=abc: model.dim: expected an integer, got 'abc'");
    SET_ERR(BASE, "model.dim=0", "--set model.dim=0: model.dim: 0 is out of range [1, 65536]");
    SET_ERR(BASE, "model.dimm=3",
            "--set model.dimm=3: unknown key 'model.dimm' (did you mean 'model.dim'?)");
    SET_ERR(BASE, "dim=3", "--set dim=3: unknown key 'dim' (did you mean 'model.dim'?)");
    SET_ERR(BASE, "foo.bar=3",
            "--set foo.bar=3: unknown key 'foo.bar'; keys are section.key, "
            "e.g. model.dim (see 'qtx config --docs')");
    SET_ERR(BASE, "model.dim",
            "--set model.dim: expected section.key=value, e.g. --set "
            "model.dim=256");
    SET_ERR(BASE, "=5", "--set =5: expected section.key=value, e.g. --set model.dim=256");
    SET_ERR(BASE, "optim.schedule=Cosine",
            "--set optim.schedule=Cosine: optim.schedule: 'Cosine' is not one of cosine, linear, "
            "wsd, constant (did you mean 'cosine'?)");
    SET_ERR(BASE, "model.tie_embeddings=",
            "--set model.tie_embeddings=: model.tie_embeddings: "
            "expected true or false, got an empty value");
    SET_ERR(BASE, "data.train=\xff",
            "--set data.train=\xff: data.train: '\xff' is not valid "
            "UTF-8");
    /* An error in the file comes before any --set is looked at. */
    SET_ERR("model:\n  dim: x\n", "model.dim=abc",
            "t.yaml:2:8: model.dim: expected an integer, got 'x'");
    /* A --set may repair what the file got wrong across keys. */
    const char *fix[] = {"model.n_heads=8", "model.n_kv_heads=4"};
    expect_load(__LINE__, BASE "model:\n  dim: 256\n  n_heads: 7\n", fix, 2, NULL);
}

static void test_validate_errors(void) {
    /* The error points at the key's line in the file, at the --set that set it, or at the
     * file as a whole when only defaults are involved. */
    ERR(BASE "model:\n  dim: 250\n  n_heads: 12\n",
        "t.yaml:4:3: model.dim = 250 is not a multiple of model.n_heads = 12; set model.dim to a "
        "multiple of 12 (e.g. 240) or model.n_heads to a divisor of 250");
    ERR(BASE "model:\n  n_heads: 12\n  n_kv_heads: 5\n",
        "t.yaml:5:3: model.n_heads = 12 is not a multiple of model.n_kv_heads = 5; set "
        "model.n_kv_heads to a divisor of 12 (12, 6, 4, 3, 2 or 1)");
    ERR(BASE "model:\n  dim: 264\n  n_heads: 8\n  n_kv_heads: 8\n",
        "t.yaml:4:3: head size model.dim / model.n_heads = 264 / 8 = 33 is odd, but RoPE rotates "
        "pairs; set model.dim to a multiple of 16 (e.g. 272)");
    ERR(BASE "  seq_len: 2048\n",
        "t.yaml:3:3: data.seq_len = 2048 exceeds model.max_seq_len = 1024; lower data.seq_len or "
        "raise model.max_seq_len to 2048");
    ERR("data:\n  train: \"\"\n",
        "t.yaml:2:3: data.train is empty; set it to a glob of training shards written by 'qtx "
        "prep', e.g. data/tiny/train_*.h5");
    ERR("model:\n  n_layers: 2\n", "t.yaml: data.train is empty; set it to a glob of training "
                                   "shards written by 'qtx prep', e.g. data/tiny/train_*.h5");
    ERR(BASE "  global_batch: 10\n  micro_batch: 4\n",
        "t.yaml:3:3: data.global_batch = 10 is not a multiple of data.micro_batch = 4; set "
        "data.global_batch to a multiple of 4 (e.g. 12) or data.micro_batch to a divisor of 10");
    ERR(BASE "  global_batch: 8\n  micro_batch: 4\nparallel:\n  dp: 4\n",
        "t.yaml:3:3: data.global_batch = 8 is not a multiple of parallel.dp x data.micro_batch = "
        "4 x 4 = 16, so the ranks cannot get whole micro-batches; set data.global_batch to a "
        "multiple of 16 (e.g. 16)");
    ERR(BASE "  global_batch: 32\n  micro_batch: 4\nparallel:\n  dp: 2\n  micro_batches: 3\n",
        "t.yaml:7:3: parallel.micro_batches = 3 contradicts data.global_batch / (parallel.dp x "
        "data.micro_batch) = 32 / (2 x 4) = 4; set parallel.micro_batches to 4, or to 0 to "
        "derive it");
    ERR(BASE "  global_batch: 32\n  micro_batch: 4\nparallel:\n  micro_batches: 3\n",
        "t.yaml:6:3: data.global_batch = 32 is not a multiple of data.micro_batch x "
        "parallel.micro_batches = 4 x 3 = 12, so no data-parallel size fits; set "
        "parallel.micro_batches to 0 to derive it");
    ERR(BASE "train:\n  eval_every: 50\n",
        "t.yaml:4:3: train.eval_every = 50 but data.val is empty; set data.val to a glob of "
        "validation shards (e.g. data/tiny/val_*.h5) or train.eval_every to 0");
    ERR(BASE "optim:\n  lr: 1e-3\n  min_lr: 2e-3\n",
        "t.yaml:5:3: optim.min_lr = 0.002 is above optim.lr = 0.001; set optim.min_lr to at most "
        "0.001 (a tenth of lr is usual)");
    ERR(BASE "optim:\n  warmup_steps: 500\ntrain:\n  steps: 300\n",
        "t.yaml:4:3: optim.warmup_steps = 500 exceeds train.steps = 300; set optim.warmup_steps "
        "to at most 300 (a tenth of the steps is usual)");
    ERR(BASE "parallel:\n  tp: 5\n",
        "t.yaml:4:3: parallel.tp = 5 does not divide model.n_heads = 12; tensor parallelism "
        "splits it evenly, so use a parallel.tp that divides model.n_heads, model.n_kv_heads, "
        "model.ffn_dim and model.vocab_size");
    ERR(BASE "model:\n  n_kv_heads: 2\nparallel:\n  tp: 4\n",
        "t.yaml:6:3: parallel.tp = 4 does not divide model.n_kv_heads = 2; tensor parallelism "
        "splits it evenly, so use a parallel.tp that divides model.n_heads, model.n_kv_heads, "
        "model.ffn_dim and model.vocab_size");
    ERR(BASE "model:\n  ffn_dim: 2050\nparallel:\n  tp: 4\n",
        "t.yaml:6:3: parallel.tp = 4 does not divide model.ffn_dim = 2050; tensor parallelism "
        "splits it evenly, so use a parallel.tp that divides model.n_heads, model.n_kv_heads, "
        "model.ffn_dim and model.vocab_size");
    ERR(BASE "model:\n  vocab_size: 4098\nparallel:\n  tp: 4\n",
        "t.yaml:6:3: parallel.tp = 4 does not divide model.vocab_size = 4098; tensor parallelism "
        "splits it evenly, so use a parallel.tp that divides model.n_heads, model.n_kv_heads, "
        "model.ffn_dim and model.vocab_size");
    ERR(BASE "model:\n  n_layers: 4\nparallel:\n  pp: 8\n",
        "t.yaml:6:3: parallel.pp = 8 exceeds model.n_layers = 4; each pipeline stage needs a "
        "layer, so set parallel.pp to at most 4");
    ERR(BASE "parallel:\n  dp: 1\n  zero: 1\n",
        "t.yaml:5:3: parallel.zero = 1 shards across data-parallel ranks, but parallel.dp = 1; "
        "set parallel.zero to 0, or parallel.dp to auto or more than 1");
    OK(BASE "parallel:\n  dp: 2\n  zero: 2\n  tp: 2\n  pp: 2\n");
    /* A --set that creates the conflict is named rather than the file's line. */
    SET_ERR(BASE "model:\n  n_kv_heads: 4\n", "model.n_heads=6",
            "--set model.n_heads=6: model.n_heads = 6 is not a multiple of model.n_kv_heads = 4; "
            "set model.n_kv_heads to a divisor of 6 (6, 3, 2 or 1)");

    /* qtx_config_validate on a config built in code: ranges too, no positions. */
    qtx_config c;
    qtx_err e = {0};
    qtx_config_defaults(&c);
    strcpy(c.data.train, "x");
    T_CHECK(qtx_config_validate(&c, NULL, &e) == QTX_OK, "%s", e.msg);
    c.parallel.zero = 3;
    T_CHECK(qtx_config_validate(&c, "cfg.yaml", &e) == QTX_ERR_INPUT, "zero 3");
    T_STREQ(e.msg, "cfg.yaml: parallel.zero: 3 is out of range [0, 2]");
    c.parallel.zero = 0;
    c.optim.lr = NAN;
    T_CHECK(qtx_config_validate(&c, NULL, &e) == QTX_ERR_INPUT, "nan lr");
    T_STREQ(e.msg, "optim.lr: nan is out of range (0, 10]");
    c.optim.lr = 3e-4;
    c.optim.schedule = (qtx_schedule)7;
    T_CHECK(qtx_config_validate(&c, NULL, &e) == QTX_ERR_INPUT, "bad enum");
    T_STREQ(e.msg, "optim.schedule: 7 is not one of cosine, linear, wsd, constant");
}

static int run_args(const char *const *argv, int argc, qtx_train_args *a, qtx_err *e) {
    return qtx_train_args_parse(argc, (char **)argv, a, e);
}

static void test_train_args(void) {
    qtx_train_args *a = malloc(sizeof *a);
    qtx_err e = {0};
    write_file("ok.yaml", BASE "model:\n  dim: 384\n");

    const char *help[] = {"train", "--bogus", "-h"};
    T_CHECK(run_args(help, 3, a, &e) == QTX_OK && a->help, "help wins");

    const char *full[] = {
        "train",          "ok.yaml",  "--set", "model.dim=1536", "--set=train.steps=5",
        "--print-config", "--resume", "auto",  "--set",          "optim.warmup_steps=5"};
    T_CHECK(run_args(full, 10, a, &e) == QTX_OK, "%s", e.msg);
    T_STREQ(a->config_path, "ok.yaml");
    T_CHECK(a->print_config == 1 && a->help == 0, "flags");
    T_CHECK(a->config.model.dim == 1536 && a->config.train.steps == 5, "sets");
    T_STREQ(a->config.train.resume, "auto");

    const char *resume_eq[] = {"train", "--resume=runs/x/ckpt/step_100", "ok.yaml"};
    T_CHECK(run_args(resume_eq, 3, a, &e) == QTX_OK, "%s", e.msg);
    T_STREQ(a->config.train.resume, "runs/x/ckpt/step_100");
    T_CHECK(a->print_config == 0, "no print");

    const struct {
        int argc;
        const char *argv[4];
        const char *msg;
    } bad[] = {
        {3,
         {"train", "ok.yaml", "--foo"},
         "unknown option '--foo' for 'qtx train'; see 'qtx "
         "train --help'"},
        {1,
         {"train"},
         "missing CONFIG.yaml: usage: qtx train CONFIG.yaml [--set "
         "section.key=value]... (e.g. qtx train configs/tiny.yaml)"},
        {3,
         {"train", "ok.yaml", "b.yaml"},
         "unexpected argument 'b.yaml': qtx train takes one "
         "CONFIG.yaml (already given 'ok.yaml')"},
        {3,
         {"train", "ok.yaml", "--set"},
         "option '--set' needs a value: --set "
         "section.key=value"},
        {3,
         {"train", "ok.yaml", "--resume"},
         "option '--resume' needs a value: latest, auto or "
         "a checkpoint path"},
        {3,
         {"train", "ok.yaml", "--resume="},
         "option '--resume' needs a value: latest, auto or "
         "a checkpoint path"},
        {4,
         {"train", "ok.yaml", "--set", "model.dim=abc"},
         "--set model.dim=abc: model.dim: expected an integer, got 'abc'"},
        {3,
         {"train", "--foo", "nope.yaml"},
         "unknown option '--foo' for 'qtx train'; see 'qtx "
         "train --help'"},
        {2, {"train", "nope.yaml"}, "cannot open 'nope.yaml': No such file or directory"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        T_CHECK(run_args(bad[i].argv, bad[i].argc, a, &e) == QTX_ERR_INPUT, "case %zu", i);
        T_STREQ(e.msg, bad[i].msg);
    }

    char *usage = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&usage, &n);
    qtx_train_usage(f);
    fclose(f);
    T_CHECK(strstr(usage, "usage: qtx train CONFIG.yaml") && strstr(usage, "--print-config") &&
                strstr(usage, "--resume") && strstr(usage, "--set"),
            "usage text");
    free(usage);
    free(a);
}

static void test_docs(void) {
    char *md = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&md, &n);
    qtx_config_write_docs(f);
    fclose(f);
    T_CHECK(!strncmp(md, "# Configuration reference\n", 26), "title");
    for (int i = 0; i < qtx_cfg_n_sections; i++) {
        char h[64];
        snprintf(h, sizeof h, "\n## %s\n", qtx_cfg_sections[i].name);
        T_CHECK(strstr(md, h) != NULL, "section %s", qtx_cfg_sections[i].name);
    }
    for (int i = 0; i < qtx_cfg_n_keys; i++) {
        char row[64];
        snprintf(row, sizeof row, "| `%s` |", qtx_cfg_keys[i].path);
        T_CHECK(strstr(md, row) != NULL, "row for %s", qtx_cfg_keys[i].path);
    }
    T_CHECK(strstr(md, "| `optim.lr` | double | `0.0003` | (0, 10] |") != NULL, "lr row");
    T_CHECK(strstr(md, "| `parallel.dp` | int or auto | `auto` | [0, 65536] or auto |"), "dp");
    T_CHECK(strstr(md, "| `optim.schedule` | enum | `cosine` | cosine, linear, wsd, constant |"),
            "schedule row");
    free(md);
}

int main(void) {
    char src[4096];
    if (!getcwd(src, sizeof src)) return 1;
    char tmpl[] = "/tmp/qtx-config-test.XXXXXX";
    const char *dir = mkdtemp(tmpl);
    if (!dir) return 1;

    if (chdir(dir)) return 1; /* every file the tests write goes here */
    test_schema_covers_config();
    test_round_trip(src);
    test_defaults();
    test_types();
    test_parse_errors();
    test_set_errors();
    test_validate_errors();
    test_train_args();
    test_docs();

    const char *files[] = {"t.yaml", "types.yaml", "rt.yaml", "ok.yaml"};
    for (int i = 0; i < 4; i++) unlink(files[i]);
    if (chdir(src) == 0) rmdir(dir);
    return qtx_test_done("test_launch_config");
}
