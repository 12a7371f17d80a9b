/* trainer.c: the step loop of `qtx train`, on every rank of the dp x pp x tp grid.
 *
 * Per optimizer step: the loader hands this DP replica its global_batch / dp samples; the
 * engine runs them as micro-batches of data.micro_batch through the pipeline, scaled by
 * 1 / (tokens in the global batch), so the update does not depend on the layout. Then the
 * global gradient norm, clipping, the schedule's learning rate and the (sharded) AdamW. A
 * non-finite loss or norm skips the update on every rank alike (both are global values);
 * optim.max_skips in a row stop the run.
 *
 * Checkpoints: every train.ckpt_every steps, at the end, and when SIGTERM, SIGINT or SIGUSR1
 * arrives (the step in progress finishes, every rank saves, the run exits 0: preemption).
 * Under mpirun send SIGUSR1, which mpirun forwards to every rank.
 *
 * Failures: input errors found before any work are agreed on by all ranks (one line from
 * the lowest failing rank, every rank exits 2); a rank failing later aborts the whole job.
 */
#include "trainer.h"

#include <glob.h>
#include <libgen.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adamw.h"
#include "backend.h"
#include "ckpt_store.h"
#include "ckpt_train.h"
#include "config_schema.h"
#include "engine.h"
#include "grid.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "peak.h"
#include "schedule.h"
#include "stop_signals.h"
#include "sys.h"
#ifdef QTX_HAVE_CUDA
#include "cuda_backend.h"
#endif

/* device.threads, or the node's cores over its ranks; never more than the CPUs this rank
 * may use (mpirun binds each rank to one core unless told otherwise). */
static int threads_for_rank(const qtx_config *cfg) {
    const int allowed = qtx_n_cpus_allowed();
    if (cfg->device.threads > 0) {
        if (cfg->device.threads > allowed)
            qtx_log_warn("device.threads = %d but this rank may run on %d CPU(s) only; launch "
                         "with mpirun --bind-to none (or --map-by slot:PE=%d)",
                         cfg->device.threads, allowed, cfg->device.threads);
        return cfg->device.threads;
    }
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    int ranks = local ? atoi(local) : 1;
    int t = qtx_n_cores() / (ranks > 0 ? ranks : 1);
    if (t > allowed) t = allowed;
    return t > 0 ? t : 1;
}

#define QTX_H100_BF16_PEAK 989.4e12 /* FLOP/s, dense, H100 SXM5 */

/* Communicator groups reported per rank: the grid's, and their NCCL twins on GPUs. */
#define N_GROUPS 9

typedef struct run {
    const qtx_config *cfg;
    qtx_comm *world;
    qtx_grid grid;
    qtx_backend backend; /* device.type's, unless cpu */
    int have_backend;    /* 1: staged, 2: cuda (freed with qtx_backend_cuda_free) */
    /* cuda: NCCL twins of the dp, tp, pp and embed groups that have more than one rank */
    qtx_comm *dp_device, *tp_device, *pp_device, *embed_device;
    qtx_engine_device dev;
    int stage_layers[1024];
    qtx_engine eng;
    int have_engine;
    qtx_loader *train, *val;
    int32_t *batch;    /* this replica's samples of one step */
    int local_samples; /* global_batch / dp */
    qtx_metrics metrics;
    int rank0;
    /* Communication per group and operation, summed over training steps (not evaluation). */
    qtx_comm_counter totals[N_GROUPS][QTX_OP_COUNT];
    double step_s_total;
} run;

/* A failure on one rank once training runs: report it here and take every rank down. */
static _Noreturn void abort_job(run *r, const qtx_err *e) {
    qtx_log_error("%s", e->msg);
    qtx_comm_abort(r->world, e->code ? e->code : 1);
}

static qtx_comm *group(run *r, int i) {
    qtx_comm *g[N_GROUPS] = {r->grid.world, r->grid.dp,    r->grid.tp,
                             r->grid.pp,    r->grid.embed, r->dp_device,
                             r->tp_device,  r->pp_device,  r->embed_device};
    return g[i];
}

static void reset_counters(run *r) {
    for (int i = 0; i < N_GROUPS; i++)
        if (group(r, i)) qtx_comm_reset_counters(group(r, i));
}

static void add_counters(run *r) {
    for (int i = 0; i < N_GROUPS; i++) {
        if (!group(r, i)) continue;
        for (int op = 0; op < QTX_OP_COUNT; op++) {
            const qtx_comm_counter *c = qtx_comm_counters(group(r, i), (qtx_comm_op)op);
            qtx_comm_counter *t = &r->totals[i][op];
            t->calls += c->calls;
            t->bytes += c->bytes;
            t->wire_bytes += c->wire_bytes;
            t->wait_s += c->wait_s;
        }
    }
}

/* out_dir/comm/rank_NNNNN.json: this rank's place, model-state bytes, and communication per
 * group and operation summed over the training steps. */
static void write_rank_report(run *r, int steps) {
    char dir[QTX_PATH_MAX + 8], path[QTX_PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/comm", r->cfg->train.out_dir);
    if (qtx_make_dirs(dir, NULL)) return;
    snprintf(path, sizeof path, "%s/rank_%05d.json", dir, r->grid.rank);
    FILE *f = fopen(path, "w");
    if (!f) return;
    const qtx_grid *g = &r->grid;
    const qtx_zero_memory mem = qtx_zero_memory_use(&r->eng.zero);
    fprintf(f,
            "{\"rank\": %d, \"dp_rank\": %d, \"tp_rank\": %d, \"pp_rank\": %d, \"steps\": %d, "
            "\"step_s\": %.6f, \"pp_wait_s\": %.6f,\n \"memory\": {\"psi\": %lld, \"shard\": "
            "%lld, \"params\": %lld, \"grads\": %lld, \"optim\": %lld, \"staging\": %lld},\n "
            "\"groups\": {",
            g->rank, g->dp_rank, g->tp_rank, g->pp_rank, steps, r->step_s_total, r->eng.comm_wait_s,
            (long long)mem.psi, (long long)mem.shard, (long long)mem.params, (long long)mem.grads,
            (long long)mem.optim, (long long)mem.staging);
    int first_group = 1;
    for (int i = 0; i < N_GROUPS; i++) {
        if (!group(r, i)) continue;
        fprintf(f, "%s\n  \"%s\": {\"size\": %d", first_group ? "" : ",",
                qtx_comm_name(group(r, i)), qtx_comm_size(group(r, i)));
        first_group = 0;
        for (int op = 0; op < QTX_OP_COUNT; op++) {
            const qtx_comm_counter *t = &r->totals[i][op];
            fprintf(f,
                    ", \"%s\": {\"calls\": %lld, \"bytes\": %lld, \"wire_bytes\": %lld, "
                    "\"wait_s\": %.6f}",
                    qtx_comm_op_name((qtx_comm_op)op), (long long)t->calls, (long long)t->bytes,
                    (long long)t->wire_bytes, t->wait_s);
        }
        fprintf(f, "}");
    }
    fprintf(f, "}}\n");
    fclose(f);
}

static double evaluate(run *r, qtx_err *e, int *n_batches) {
    const qtx_config *c = r->cfg;
    qtx_loader_state start = {0, 0};
    if (qtx_loader_set_state(r->val, start, e)) abort_job(r, e);
    const int64_t per_batch = (int64_t)c->data.micro_batch * c->data.seq_len * r->grid.dp_size;
    double total = 0.0;
    for (int i = 0; i < c->train.eval_batches; i++) {
        if (qtx_loader_next(r->val, r->batch, e)) abort_job(r, e);
        total += qtx_engine_eval(&r->eng, r->batch, 1);
    }
    *n_batches = c->train.eval_batches;
    return total / (double)(per_batch * c->train.eval_batches);
}

static int open_loaders(run *r, qtx_err *e) {
    const qtx_config *c = r->cfg;
    qtx_loader_options o = {0};
    o.glob = c->data.train;
    o.seq_len = c->data.seq_len;
    o.global_batch = c->data.global_batch;
    o.dp_rank = r->grid.dp_rank;
    o.dp_size = r->grid.dp_size;
    o.seed = c->data.seed;
    o.shuffle = 1;
    o.tokenizer_hash = "";
    o.vocab_size = c->model.vocab_size;
    o.prefetch = 1;
    int rc = qtx_loader_open(&r->train, &o, e);
    if (rc) return rc;
    if (c->data.val[0] && c->train.eval_every > 0) {
        o.glob = c->data.val;
        o.tokenizer_hash = qtx_loader_tokenizer_hash(r->train); /* val must share train's */
        o.global_batch = c->data.micro_batch * r->grid.dp_size;
        o.shuffle = 0;
        o.prefetch = 0;
        rc = qtx_loader_open(&r->val, &o, e);
    }
    return rc;
}

/* Every setting as text, keyed by its dotted path, for the checkpoint's record. */
static cJSON *settings_json(const qtx_config *c) {
    cJSON *o = cJSON_CreateObject();
    char buf[QTX_PATH_MAX + 64];
    for (int i = 0; i < qtx_cfg_n_keys; i++) {
        qtx_cfg_format(&qtx_cfg_keys[i], c, buf, sizeof buf);
        cJSON_AddStringToObject(o, qtx_cfg_keys[i].path, buf);
    }
    return o;
}

/* Logs every setting that differs from the checkpoint's (the new config wins). */
static void log_changes(const cJSON *saved, const cJSON *now) {
    const cJSON *item;
    cJSON_ArrayForEach(item, now) {
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(saved, item->string);
        if (cJSON_IsString(old) && strcmp(old->valuestring, item->valuestring))
            qtx_log_info("resume: %s changed from %s to %s", item->string, old->valuestring,
                         item->valuestring);
    }
}

/* The tokenizer beside the first training shard (qtx prep writes it there), or "". */
static void find_tokenizer(const char *train_glob, char *out, size_t n) {
    out[0] = '\0';
    glob_t gl;
    if (glob(train_glob, 0, NULL, &gl) == 0 && gl.gl_pathc > 0) {
        char first[QTX_PATH_MAX];
        snprintf(first, sizeof first, "%s", gl.gl_pathv[0]);
        snprintf(out, n, "%s/tokenizer.json", dirname(first));
    }
    globfree(&gl);
}

/* Which checkpoint train.resume names: "" and an absent "auto" mean none (dir = ""). */
static int resume_dir(const qtx_config *c, const char *root, char *dir, size_t n, qtx_err *e) {
    dir[0] = '\0';
    const char *what = c->train.resume;
    if (!what[0]) return QTX_OK;
    char latest[QTX_PATH_MAX + 16];
    snprintf(latest, sizeof latest, "%s/latest", root);
    struct stat st;
    const int have = stat(latest, &st) == 0;
    if (!strcmp(what, "auto") && !have) return QTX_OK;
    if (!strcmp(what, "latest") && !have)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "--resume latest: %s has no checkpoint (no %s); train without --resume, "
                        "or use train.resume: auto to resume only when one exists",
                        c->train.out_dir, latest);
    return qtx_ckpt_resolve(strcmp(what, "auto") ? what : "latest", root, dir, n, e);
}

#ifdef QTX_HAVE_CUDA
/* NCCL needs a GPU of its own per rank: every rank's (host, PCI bus id) is gathered and two
 * ranks on one GPU are refused (one line, every rank),
 * instead of NCCL's "duplicate GPU" deep in its setup. Whether ranks see distinct GPUs
 * through CUDA_VISIBLE_DEVICES or pick them by node-local rank, the bus id tells. */
static int check_gpus_distinct(run *r, int device, qtx_err *e) {
    enum { SLOT = 320 }; /* "host/bus id" of one rank */
    const int W = r->grid.world_size;
    char *ids = qtx_calloc((size_t)W, SLOT), bus[64] = "", why[256] = "";
    int64_t *counts = qtx_calloc((size_t)W, sizeof *counts);
    char *mine = ids + (size_t)r->grid.rank * SLOT;
    gethostname(mine, 255);
    qtx_cuda_device_bus_id(device, bus, sizeof bus, why, sizeof why);
    const size_t hl = strlen(mine);
    snprintf(mine + hl, SLOT - hl, "/%s", bus);
    for (int i = 0; i < W; i++) counts[i] = SLOT;
    qtx_comm_allgatherv(r->world, ids, counts, QTX_U8);
    int rc = QTX_OK;
    for (int i = 0; i < W && !rc; i++)
        for (int j = i + 1; j < W && !rc; j++)
            if (!strncmp(ids + (size_t)i * SLOT, ids + (size_t)j * SLOT, SLOT))
                rc = qtx_fail(e, QTX_ERR_INPUT,
                              "device.type = cuda: ranks %d and %d share one GPU, but NCCL needs a "
                              "GPU per rank; launch at most as many ranks per node as it has GPUs",
                              i, j);
    free(ids);
    free(counts);
    if (rc && r->grid.rank != 0) e->msg[0] = '\0'; /* the same verdict everywhere: rank 0 says it */
    return rc;
}
#endif

/* device.type: the backend this rank's model computes on and, for cuda, its GPU (the
 * node-local rank's, modulo the GPUs visible) and NCCL twins of its groups, following the
 * compute stream so each gradient bucket is reduced while backward goes on. Collective
 * over the world; every rank reaches the same verdict. */
static int open_device(run *r, int threads, qtx_err *e) {
    const qtx_config *cfg = r->cfg;
    if (cfg->device.type == QTX_DEVICE_CPU) return QTX_OK;
    const int bf16 = cfg->device.precision == QTX_PRECISION_BF16;
    if (cfg->device.type == QTX_DEVICE_STAGED) {
        r->backend = bf16 ? qtx_backend_cpu_staged_bf16(threads, cfg->device.bf16_param_copy)
                          : qtx_backend_cpu_staged(threads);
        r->have_backend = 1;
        r->dev.backend = &r->backend;
        return QTX_OK;
    }
    int rc = QTX_OK;
#ifdef QTX_HAVE_CUDA
    const int local = qtx_comm_node_rank(r->world);
    char why[256] = "";
    const int n = qtx_cuda_device_count(why, sizeof why);
    int device = -1;
    if (n == 0)
        rc = qtx_fail(e, QTX_ERR_INPUT,
                      "device.type = cuda, but rank %d sees no GPU (%s); run on GPU nodes or set "
                      "device.type: cpu",
                      r->grid.rank, why);
    else {
        device = local % n;
        const int precision = !bf16                         ? QTX_CUDA_FP32
                              : cfg->device.bf16_param_copy ? QTX_CUDA_BF16
                                                            : QTX_CUDA_BF16_PER_PRODUCT;
        if (qtx_backend_cuda_create(&r->backend, device, precision, why, sizeof why))
            rc = qtx_fail(e, QTX_ERR_RUNTIME, "device.type = cuda: rank %d, GPU %d: %s",
                          r->grid.rank, device, why);
        else
            r->have_backend = 2;
    }
    if ((rc = qtx_comm_agree(r->world, rc, e))) return rc;
    if ((rc = check_gpus_distinct(r, device, e))) return rc;
    r->dev.backend = &r->backend;
    /* Each group of more than one rank gets its NCCL twin (collective over the group, then an
     * agreement over the world so a failure anywhere stops every rank). */
    const struct {
        qtx_comm *host;
        qtx_comm **twin;
        const char *name;
    } groups[] = {{r->grid.dp, &r->dp_device, "dp-nccl"},
                  {r->grid.tp, &r->tp_device, "tp-nccl"},
                  {r->grid.pp, &r->pp_device, "pp-nccl"},
                  {r->grid.embed, &r->embed_device, "embed-nccl"}};
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        const qtx_comm *h = groups[i].host;
        rc = QTX_OK;
        if (h && qtx_comm_size(h) > 1) {
            *groups[i].twin = qtx_comm_nccl_create(groups[i].host, device, groups[i].name, e);
            if (*groups[i].twin)
                qtx_comm_nccl_follow(*groups[i].twin, qtx_backend_cuda_stream(&r->backend));
            else
                rc = QTX_ERR_RUNTIME;
        }
        if ((rc = qtx_comm_agree(r->world, rc, e))) return rc;
    }
    r->dev.dp = r->dp_device;
    r->dev.tp = r->tp_device;
    r->dev.pp = r->pp_device;
    r->dev.embed = r->embed_device;
    qtx_log_info("device: GPU %d of %d on this node (node-local rank %d), %s matrix products%s",
                 device, n, local,
                 !bf16                         ? "fp32"
                 : cfg->device.bf16_param_copy ? "bf16 (weights from a bf16 copy of the parameters)"
                                               : "bf16 (weights rounded at every product)",
                 r->dp_device || r->tp_device || r->pp_device ? "; collectives over NCCL" : "");
#else
    (void)threads;
    rc = qtx_fail(e, QTX_ERR_INPUT,
                  "device.type = cuda, but this qtx was built without CUDA (QTX_CUDA=OFF); "
                  "rebuild where the CUDA toolkit and NCCL are found, or set device.type: cpu");
    rc = qtx_comm_agree(r->world, rc, e);
#endif
    return rc;
}

static void close_device(run *r) {
    qtx_comm *twins[] = {r->dp_device, r->tp_device, r->pp_device, r->embed_device};
    for (size_t i = 0; i < sizeof twins / sizeof twins[0]; i++) qtx_comm_free(twins[i]);
    r->dp_device = r->tp_device = r->pp_device = r->embed_device = NULL;
#ifdef QTX_HAVE_CUDA
    if (r->have_backend == 2) qtx_backend_cuda_free(&r->backend);
#endif
    if (r->have_backend == 1) qtx_backend_cpu_free(&r->backend);
    r->have_backend = 0;
}

static void log_layout(const run *r) {
    const qtx_grid *g = &r->grid;
    const qtx_config *cfg = r->cfg;
    const qtx_zero_memory mem = qtx_zero_memory_use(&r->eng.zero);
    char split[256] = "";
    size_t at = 0;
    for (int s = 0; s < g->pp_size && at + 16 < sizeof split; s++)
        at += (size_t)snprintf(split + at, sizeof split - at, "%s%d", s ? "," : "",
                               r->stage_layers[s]);
    qtx_log_info("layout: world %d = dp %d x pp %d x tp %d, ZeRO-%d; layers per stage %s; %d "
                 "micro-batches of %d per replica per step",
                 g->world_size, g->dp_size, g->pp_size, g->tp_size, g->zero, split, r->eng.n_micro,
                 cfg->data.micro_batch);
    qtx_log_info("model state on rank 0: %lld params (psi) -> params %.2f MB + grads %.2f MB + "
                 "AdamW %.2f MB = %.2f MB%s; staging %.2f MB",
                 (long long)mem.psi, mem.params / 1e6, mem.grads / 1e6, mem.optim / 1e6,
                 (mem.params + mem.grads + mem.optim) / 1e6,
                 g->zero == 0   ? " (16 psi)"
                 : g->zero == 1 ? " (8 psi + 8 psi/dp)"
                                : " (4 psi + 12 psi/dp)",
                 mem.staging / 1e6);
    if (r->have_backend && cfg->device.precision == QTX_PRECISION_BF16 &&
        cfg->device.bf16_param_copy) {
        const int per = r->have_backend == 2 ? 2 : 4; /* cuda keeps bf16; staged, floats */
        qtx_log_info("bf16 copy of the parameters: %.2f MB (%d psi)", (double)mem.psi * per / 1e6,
                     per);
    }
}

int qtx_train_run(qtx_comm *world, const qtx_config *cfg_in, qtx_err *e) {
    static run r; /* large (counters); one run per process */
    memset(&r, 0, sizeof r);
    qtx_config cfg_local = *cfg_in;
    const qtx_config *cfg = &cfg_local;
    r.cfg = cfg;
    r.world = world;
    r.rank0 = qtx_comm_rank(world) == 0;
    const qtx_data_config *dc = &cfg->data;
    const int threads = threads_for_rank(cfg);
    omp_set_num_threads(threads);

    /* Every check that can fail on bad input runs before out_dir is touched. The layout
     * checks are pure, so every rank reaches the same verdict; rank 0 reports it. */
    int rc = qtx_grid_plan(&cfg_local.parallel, &cfg->model, qtx_comm_size(world),
                           cfg->parallel.stage_layers, r.stage_layers, e);
    if (rc) {
        if (!r.rank0) e->msg[0] = '\0';
        return rc;
    }
    const int dp = cfg->parallel.dp;
    if (dc->global_batch % (dp * dc->micro_batch)) {
        rc = qtx_fail(e, QTX_ERR_INPUT,
                      "data.global_batch = %d is not a multiple of dp x data.micro_batch = %d x "
                      "%d; set data.global_batch to a multiple of %d",
                      dc->global_batch, dp, dc->micro_batch, dp * dc->micro_batch);
        if (!r.rank0) e->msg[0] = '\0';
        return rc;
    }
    qtx_grid_create(&r.grid, world, &cfg->parallel, &cfg->model, r.stage_layers);
    qtx_log_setup(QTX_LOG_INFO, r.grid.world_size > 1 ? r.grid.rank : -1, 0);
    char root[QTX_PATH_MAX + 8], from[QTX_PATH_MAX] = "";
    const size_t out_len = strnlen(cfg->train.out_dir, QTX_PATH_MAX - 1);
    memcpy(root, cfg->train.out_dir, out_len);
    memcpy(root + out_len, "/ckpt", 6);
    rc = open_loaders(&r, e);
    if (!rc) rc = resume_dir(cfg, root, from, sizeof from, e);
    if ((rc = qtx_comm_agree(r.world, rc, e))) goto out;
    if ((rc = open_device(&r, threads, e))) goto out;

    r.local_samples = dc->global_batch / dp;
    const int n_micro = r.local_samples / dc->micro_batch;
    qtx_engine_create(&r.eng, &r.grid, &cfg->model, &cfg->optim, dc->micro_batch, dc->seq_len,
                      n_micro, cfg->train.seed, r.have_backend ? &r.dev : NULL);
    r.have_engine = 1;
    r.batch = qtx_alloc_big((size_t)r.local_samples * (dc->seq_len + 1) * sizeof(int32_t));
    cJSON *settings = settings_json(cfg);
    int start_step = 0, skips = 0;
    if (from[0]) { /* a checkpoint replaces the initial weights, moments and data position */
        qtx_ckpt_resume res;
        const double t_load = qtx_now_s();
        if ((rc = qtx_ckpt_load(&r.eng, from, &res, e))) goto out_settings;
        const double load_s = qtx_now_s() - t_load;
        const char *hash = qtx_loader_tokenizer_hash(r.train);
        if (res.tokenizer_hash[0] && hash[0] && strcmp(res.tokenizer_hash, hash))
            rc = qtx_fail(e, QTX_ERR_INPUT,
                          "checkpoint %s was trained on data of tokenizer %.16s..., but "
                          "data.train has tokenizer %.16s...; resume on the same data",
                          from, res.tokenizer_hash, hash);
        if (!rc) rc = qtx_loader_set_state(r.train, res.loader, e);
        if (!r.rank0 && rc) e->msg[0] = '\0'; /* same verdict everywhere: rank 0 speaks */
        if (!rc) {
            start_step = res.step;
            skips = res.skips;
            qtx_log_info("resumed from %s at step %d (epoch %llu, sample %llu of the epoch)", from,
                         start_step, (unsigned long long)res.loader.epoch,
                         (unsigned long long)res.loader.cursor);
            int64_t read = res.bytes_read;
            qtx_comm_allreduce(r.world, &read, 1, QTX_I64, QTX_SUM);
            const double mb = (double)read / 1e6;
            qtx_log_info("checkpoint loaded: %.1f MB read by %d ranks in %.2f s (%.2f GB/s)", mb,
                         r.grid.world_size, load_s, mb / 1e3 / (load_s > 0 ? load_s : 1e-9));
            log_changes(cJSON_GetObjectItemCaseSensitive(res.meta, "settings"), settings);
        }
        cJSON_Delete(res.meta);
        if (rc) goto out_settings;
    }
    if (r.rank0) rc = qtx_make_dirs(cfg->train.out_dir, e);
    if (!rc && r.rank0)
        rc =
            qtx_metrics_open(&r.metrics, cfg->train.out_dir, from[0] != 0, cfg->train.log_every, e);
    if ((rc = qtx_comm_agree(r.world, rc, e))) goto out_settings;
    char tokenizer[QTX_PATH_MAX + 16];
    find_tokenizer(dc->train, tokenizer, sizeof tokenizer);
    qtx_ckpt_save_args save = {0};
    save.ckpt_root = root;
    save.tokenizer_path = tokenizer;
    save.tokenizer_hash = qtx_loader_tokenizer_hash(r.train);
    save.settings = settings;
    save.keep = cfg->train.ckpt_keep;
    save.protect = from[0] ? from : NULL;
    qtx_stop_signals_arm();

    /* On a GPU the stated peak is H100 SXM's dense bf16 (the figure MFU is quoted against);
     * on the CPU a GEMM measured now. */
    const int on_gpu = cfg->device.type == QTX_DEVICE_CUDA;
    const double peak = cfg->train.peak_flops > 0 ? cfg->train.peak_flops
                        : on_gpu                  ? QTX_H100_BF16_PEAK
                                                  : qtx_measure_gemm_flops();
    const double flops_tok = qtx_model_flops_per_token(&cfg->model, dc->seq_len);
    const int64_t step_tokens = (int64_t)dc->global_batch * dc->seq_len;
    qtx_log_info("model: %lld parameters (%.1f MB fp32), %d layers, dim %d; activations %.1f MB "
                 "on rank 0",
                 (long long)qtx_model_n_params(&cfg->model),
                 (double)qtx_model_n_params(&cfg->model) * 4 / 1e6, cfg->model.n_layers,
                 cfg->model.dim, (double)r.eng.model.arena_bytes / 1e6);
    log_layout(&r);
    qtx_log_info("data: %lld tokens, %lld samples per epoch, %lld tokens per step; %d threads "
                 "per rank; MFU peak %.1f GFLOP/s per rank%s",
                 (long long)qtx_loader_total_tokens(r.train),
                 (long long)qtx_loader_samples_per_epoch(r.train), (long long)step_tokens, threads,
                 peak / 1e9,
                 cfg->train.peak_flops > 0 ? " (train.peak_flops)"
                 : on_gpu                  ? (cfg->device.precision == QTX_PRECISION_BF16
                                                  ? " (H100 SXM dense bf16; set train.peak_flops for another GPU)"
                                                  : " (H100 SXM dense bf16, which fp32 products do not reach: fp32 "
                                                    "MFU reads low)")
                                           : " (measured)");

    if (r.val && !from[0]) { /* where validation starts, to compare every later evaluation */
        int nb = 0;
        double vl = evaluate(&r, e, &nb);
        if (r.rank0) qtx_metrics_eval(&r.metrics, 0, vl, nb);
    }
    const double t_start = qtx_now_s();
    int steps_done = 0;
    for (int step = start_step; step < cfg->train.steps; step++) {
        const double t0 = qtx_now_s();
        if (qtx_loader_next(r.train, r.batch, e)) abort_job(&r, e);
        reset_counters(&r);
        const double loss =
            qtx_engine_forward_backward(&r.eng, r.batch, 1.0f / (float)step_tokens) /
            (double)step_tokens;
        const double gnorm = qtx_engine_grad_norm(&r.eng);
        const double lr = qtx_lr_at(&cfg->optim, step, cfg->train.steps);
        const int skipped = !isfinite(loss) || !isfinite(gnorm);
        if (skipped) {
            skips++;
            qtx_log_warn(
                "step %d: non-finite %s; update skipped (%d in a row, limit optim.max_skips = %d)",
                step + 1, isfinite(loss) ? "gradient" : "loss", skips, cfg->optim.max_skips);
        } else {
            skips = 0;
            qtx_engine_update(&r.eng, lr, qtx_clip_scale(gnorm, cfg->optim.grad_clip), step + 1);
        }
        add_counters(&r);
        steps_done++;
        const double t1 = qtx_now_s();
        r.step_s_total += t1 - t0;
        qtx_step_stats s = {0};
        s.step = step + 1;
        s.total_steps = cfg->train.steps;
        s.loss = loss;
        s.lr = lr;
        s.grad_norm = gnorm;
        s.step_s = t1 - t0;
        s.tokens_per_s = (double)step_tokens / s.step_s;
        s.mfu = s.tokens_per_s * flops_tok / (peak * r.grid.world_size);
        s.elapsed_s = t1 - t_start;
        s.skipped = skipped;
        if (r.rank0) qtx_metrics_step(&r.metrics, &s);
        if (skips >= cfg->optim.max_skips) {
            rc = qtx_fail(e, QTX_ERR_RUNTIME,
                          "%d consecutive non-finite steps at step %d; lower optim.lr or "
                          "raise optim.warmup_steps",
                          skips, step + 1);
            if (!r.rank0) e->msg[0] = '\0';
            goto out;
        }
        const int last = step + 1 == cfg->train.steps;
        if (r.val && ((step + 1) % cfg->train.eval_every == 0 || last)) {
            int nb = 0;
            double vl = evaluate(&r, e, &nb);
            if (r.rank0) qtx_metrics_eval(&r.metrics, step + 1, vl, nb);
        }
        int stop = qtx_stop_signal(); /* any rank's signal stops all, after the same step */
        qtx_comm_allreduce(r.world, &stop, 1, QTX_I32, QTX_MAX);
        const int periodic = cfg->train.ckpt_every > 0 && (step + 1) % cfg->train.ckpt_every == 0;
        if (periodic || last || stop) {
            save.step = step + 1;
            save.loader = qtx_loader_get_state(r.train);
            save.skips = skips;
            double secs = 0;
            int64_t bytes = 0;
            if ((rc = qtx_ckpt_save(&r.eng, &save, &secs, &bytes, e))) goto out_settings;
            int64_t total = bytes;
            qtx_comm_allreduce(r.world, &total, 1, QTX_I64, QTX_SUM);
            qtx_log_info("checkpoint %s/step_%08d: %.1f MB in %.2f s (%.2f GB/s)", root, step + 1,
                         (double)total / 1e6, secs, (double)total / 1e9 / (secs > 0 ? secs : 1e-9));
        }
        if (stop && !last) {
            qtx_log_info("stopping after step %d on signal %d; resume with --resume latest",
                         step + 1, stop);
            break;
        }
    }
    if (start_step >= cfg->train.steps) { /* resumed at the end: the run's state, re-saved */
        save.step = start_step;
        save.loader = qtx_loader_get_state(r.train);
        save.skips = skips;
        if ((rc = qtx_ckpt_save(&r.eng, &save, NULL, NULL, e))) goto out_settings;
    }
    write_rank_report(&r, steps_done);
out_settings:
    cJSON_Delete(settings);
out:
    if (r.rank0) qtx_metrics_close(&r.metrics);
    if (r.train) qtx_loader_close(r.train);
    if (r.val) qtx_loader_close(r.val);
    if (r.have_engine) {
        qtx_free_big(r.batch, (size_t)r.local_samples * (dc->seq_len + 1) * sizeof(int32_t));
        qtx_engine_destroy(&r.eng);
    }
    close_device(&r);
    qtx_grid_destroy(&r.grid);
    return rc;
}
