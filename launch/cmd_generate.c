/* cmd_generate.c: `qtx generate MODEL -p PROMPT`: prompt processing in batches, then one
 * token at a time, streaming the text to stdout (only the text); logs and speeds to stderr. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#ifdef QTX_HAVE_CUDA
#include "cuda_infer_model.h"
#endif
#include "commands.h"
#include "infer_args.h"
#include "log.h"
#include "sampler.h"
#include "sys.h"

static const char HELP[] =
    "usage: qtx generate MODEL -p PROMPT [options]\n"
    "\n"
    "MODEL is a GGUF file (qtx export) or a checkpoint directory. The continuation streams to\n"
    "standard output as it is produced; logs and tokens/s go to standard error.\n"
    "\n"
    "  -p, --prompt TEXT     the prompt (required)\n"
    "  -n, --n-tokens N      tokens to generate (default 128; stops early at end-of-text)\n"
    "  --temp T              sampling temperature (default 0.8; 0 is greedy)\n"
    "  --top-k K             sample among the K most likely (default 40; 0 = all)\n"
    "  --top-p P             ... and the smallest set holding probability P (default 0.95)\n"
    "  --seed S              sampling seed (default 1); the same seed repeats a generation\n"
    "  --threads N           threads (default: all cores)\n"
    "  --kv-quant T|K,V      KV cache storage, f32, q8 or q4 (default q8); K,V sets keys and\n"
    "                        values apart (e.g. q4,q8); q8/q4 keys use integer attention\n"
    "  --ctx N               context length (default: the model's)\n"
    "  --mmap                map the GGUF file instead of reading it into huge pages (less\n"
    "                        memory, shared with the page cache; slower decoding: q4_0 and\n"
    "                        q8_0 weights are not repacked for the SIMD kernels)\n"
    "  --device D            cpu (default), or cuda or cuda:N (GPU N, default 0): weights, KV\n"
    "                        cache (f32 or q8) and every product on the GPU\n"
    "  -h, --help            this help\n";

typedef struct gen_args {
    const char *model, *prompt;
    long long n, top_k, seed, threads, ctx;
    double temp, top_p;
    int kv_k, kv_v, use_mmap;
    int device; /* -1: the CPU; else the GPU's index */
} gen_args;

static int parse(int argc, char **argv, gen_args *a, int *done) {
    *done = 0;
    a->n = 128;
    a->top_k = 40;
    a->seed = 1;
    a->temp = 0.8;
    a->top_p = 0.95;
    a->kv_k = a->kv_v = QTX_KV_Q8;
    a->device = -1;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v;
        int missing = 0;
        char *end;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(HELP, stdout);
            *done = 1;
            return 0;
        } else if (!strcmp(s, "--mmap")) {
            a->use_mmap = 1;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--prompt", "-p", &missing))) {
            a->prompt = v;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--n-tokens", "-n", &missing))) {
            if (qtx_parse_int(v, 0, 1 << 30, &a->n))
                return qtx_usage_error("-n '%s': expected a number of tokens >= 0", v);
        } else if ((v = qtx_opt_value(argc, argv, &i, "--top-k", NULL, &missing))) {
            if (qtx_parse_int(v, 0, 1 << 30, &a->top_k))
                return qtx_usage_error("--top-k '%s': expected an integer >= 0", v);
        } else if ((v = qtx_opt_value(argc, argv, &i, "--seed", NULL, &missing))) {
            if (qtx_parse_int(v, 0, (long long)1 << 62, &a->seed))
                return qtx_usage_error("--seed '%s': expected an integer >= 0", v);
        } else if ((v = qtx_opt_value(argc, argv, &i, "--threads", NULL, &missing))) {
            if (qtx_parse_int(v, 1, 4096, &a->threads))
                return qtx_usage_error("--threads '%s': expected an integer in [1, 4096]", v);
        } else if ((v = qtx_opt_value(argc, argv, &i, "--ctx", NULL, &missing))) {
            if (qtx_parse_int(v, 1, 1 << 24, &a->ctx))
                return qtx_usage_error("--ctx '%s': expected a token count >= 1", v);
        } else if ((v = qtx_opt_value(argc, argv, &i, "--temp", NULL, &missing))) {
            a->temp = strtod(v, &end);
            if (*end || !(a->temp >= 0 && a->temp <= 100))
                return qtx_usage_error("--temp '%s': expected a number in [0, 100]", v);
        } else if ((v = qtx_opt_value(argc, argv, &i, "--top-p", NULL, &missing))) {
            a->top_p = strtod(v, &end);
            if (*end || !(a->top_p > 0 && a->top_p <= 1))
                return qtx_usage_error("--top-p '%s': expected a number in (0, 1]", v);
        } else if ((v = qtx_opt_value(argc, argv, &i, "--device", NULL, &missing))) {
            long long d = 0;
            if (!strcmp(v, "cpu"))
                a->device = -1;
            else if (!strcmp(v, "cuda") ||
                     (!strncmp(v, "cuda:", 5) && !qtx_parse_int(v + 5, 0, 1023, &d)))
                a->device = (int)d;
            else
                return qtx_usage_error("--device '%s': expected cpu, cuda or cuda:N", v);
        } else if ((v = qtx_opt_value(argc, argv, &i, "--kv-quant", NULL, &missing))) {
            if (qtx_parse_kv_types(v, &a->kv_k, &a->kv_v))
                return qtx_usage_error("--kv-quant '%s': expected f32, q8 or q4, or K,V (q4,q8)",
                                       v);
        } else if (missing) {
            return qtx_usage_error("option '%s' needs a value; see 'qtx generate --help'", s);
        } else if (s[0] == '-' && s[1]) {
            return qtx_usage_error("unknown option '%s'; see 'qtx generate --help'", s);
        } else if (!a->model) {
            a->model = s;
        } else {
            return qtx_usage_error("unexpected argument '%s': qtx generate takes one MODEL", s);
        }
    }
    if (!a->model) return qtx_usage_error("missing MODEL: usage: qtx generate MODEL -p PROMPT");
    if (!a->prompt) return qtx_usage_error("missing --prompt: usage: qtx generate MODEL -p PROMPT");
    return 0;
}

/* One forward pass of n tokens on the CPU model or, when gpu, its copy on the GPU. */
static int forward(qtx_infer_model *m, void *gpu, const int32_t *tokens, int n, float *logits,
                   qtx_err *e) {
#ifdef QTX_HAVE_CUDA
    if (gpu) return qtx_infer_cuda_forward(gpu, tokens, n, logits, 0, e);
#else
    (void)gpu;
#endif
    return qtx_infer_forward(m, tokens, n, logits, 0, e);
}

int qtx_cmd_generate(int argc, char **argv) {
    gen_args a = {0};
    int done;
    int rc = parse(argc, argv, &a, &done);
    if (rc || done) return rc;
#ifndef QTX_HAVE_CUDA
    if (a.device >= 0)
        return qtx_usage_error("--device cuda: this qtx was built without CUDA (QTX_CUDA=OFF); "
                               "use --device cpu");
#endif
    void *gpu = NULL;
    omp_set_num_threads(a.threads > 0 ? (int)a.threads : qtx_n_cores());
    qtx_err e = {0};
    qtx_infer_model m;
    if (qtx_open_model(&m, a.model, a.use_mmap, &e)) return qtx_report(&e);
    qtx_ids ids = {0};
    float *logits = NULL;
    qtx_sampler smp = {0};
    if (!m.tok) {
        rc = qtx_fail(&e, QTX_ERR_INPUT, "%s carries no tokenizer; export it from a checkpoint",
                      a.model);
        goto out;
    }
    qtx_encoder *enc = qtx_encoder_new(m.tok);
    qtx_encode(enc, a.prompt, strlen(a.prompt), &ids); /* NOLINT: parse required --prompt */
    qtx_encoder_free(enc);
    if (ids.n == 0) {
        rc = qtx_fail(&e, QTX_ERR_INPUT, "--prompt: the prompt is empty");
        goto out;
    }
    const int64_t ctx = a.ctx > 0 ? a.ctx : m.cfg.max_seq_len;
    if ((int64_t)ids.n + a.n > ctx) {
        rc = qtx_fail(&e, QTX_ERR_INPUT,
                      "the prompt (%zu tokens) and -n %lld exceed the context of %lld tokens; "
                      "lower -n or raise --ctx",
                      ids.n, a.n, (long long)ctx);
        goto out;
    }
    const int batch = ids.n < 512 ? (int)ids.n : 512;
#ifdef QTX_HAVE_CUDA
    if (a.device >= 0) {
        qtx_infer_cuda *g = NULL;
        if ((rc = qtx_infer_cuda_create(&g, &m, a.device, ctx, (qtx_kv_type)a.kv_k,
                                        (qtx_kv_type)a.kv_v, batch, &e)))
            goto out;
        gpu = g;
    }
#endif
    if (!gpu &&
        (rc = qtx_infer_start(&m, ctx, (qtx_kv_type)a.kv_k, (qtx_kv_type)a.kv_v, batch, &e)))
        goto out;
    logits = qtx_malloc((size_t)m.cfg.vocab_size * sizeof(float));
    qtx_sampler_init(&smp, m.cfg.vocab_size, (float)a.temp, (int)a.top_k, (float)a.top_p,
                     (uint64_t)a.seed);
    const double t0 = qtx_now_s();
    for (size_t at = 0; at < ids.n && !rc; at += (size_t)batch) {
        const int n = ids.n - at < (size_t)batch ? (int)(ids.n - at) : batch;
        rc = forward(&m, gpu, (const int32_t *)ids.v + at, n, logits, &e);
    }
    if (rc) goto out;
    const double t1 = qtx_now_s();
    const int64_t eos = qtx_tokenizer_eos_id(m.tok);
    long long produced = 0;
    for (; produced < a.n; produced++) {
        const int32_t next = qtx_sample(&smp, logits);
        if (next == eos) break;
        size_t len;
        const char *bytes = qtx_tokenizer_token_bytes(m.tok, (uint32_t)next, &len);
        fwrite(bytes, 1, len, stdout);
        fflush(stdout);
        if (produced + 1 < a.n && (rc = forward(&m, gpu, &next, 1, logits, &e))) goto out;
    }
    fputc('\n', stdout);
    const double t2 = qtx_now_s();
    qtx_log_info("prompt: %zu tokens in %.3f s (%.1f tokens/s); decode: %lld tokens in %.3f s "
                 "(%.1f tokens/s); %s weights%s",
                 ids.n, t1 - t0, (double)ids.n / (t1 - t0 > 0 ? t1 - t0 : 1e-9), produced, t2 - t1,
                 (double)produced / (t2 - t1 > 0 ? t2 - t1 : 1e-9),
                 qtx_qtype_get(m.main_type)->name, gpu ? " on the GPU" : "");
out:
#ifdef QTX_HAVE_CUDA
    qtx_infer_cuda_free(gpu);
#endif
    qtx_sampler_free(&smp);
    free(logits);
    qtx_ids_free(&ids);
    qtx_infer_free(&m);
    return rc ? qtx_report(&e) : 0;
}
