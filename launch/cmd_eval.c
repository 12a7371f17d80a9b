/* cmd_eval.c: `qtx eval MODEL --data DIR`: mean cross-entropy and perplexity of the model
 * over the validation shards, in windows of --ctx tokens (each window a fresh sequence,
 * processed as a batch). Machine-readable result on stdout. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "commands.h"
#include "infer_args.h"
#include "loader.h"
#include "log.h"
#include "sys.h"

static const char HELP[] =
    "usage: qtx eval MODEL --data DIR [options]\n"
    "\n"
    "Loss and perplexity of MODEL (a GGUF file or a checkpoint directory) on the validation\n"
    "shards DIR/val_*.h5 written by qtx prep (or --data GLOB). Prints one line to stdout:\n"
    "  loss L perplexity P tokens N\n"
    "\n"
    "  --data DIR|GLOB       validation data (required)\n"
    "  --ctx N               tokens per window (default: min(the model's context, 256))\n"
    "  --windows N           windows to evaluate (default: all)\n"
    "  --threads N           threads (default: all cores)\n"
    "  --kv-quant T|K,V      KV cache storage, f32, q8 or q4 (default f32); K,V sets keys and\n"
    "                        values apart (e.g. q4,q8)\n"
    "  --kv-compare          also attend with an f32 cache and report the cosine similarity\n"
    "                        of every attention head's output (min and mean) on stderr\n"
    "  --mmap                map the GGUF file instead of reading it into huge pages (less\n"
    "                        memory, shared with the page cache; slower decoding: q4_0 and\n"
    "                        q8_0 weights are not repacked for the SIMD kernels)\n"
    "  -h, --help            this help\n";

int qtx_cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL;
    long long ctx = 0, windows = 0, threads = 0;
    int kv_k = QTX_KV_F32, kv_v = QTX_KV_F32, kv_compare = 0, use_mmap = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v;
        int missing = 0;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(HELP, stdout);
            return 0;
        } else if (!strcmp(s, "--kv-compare")) {
            kv_compare = 1;
        } else if (!strcmp(s, "--mmap")) {
            use_mmap = 1;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--data", NULL, &missing))) {
            data = v;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--ctx", NULL, &missing))) {
            if (qtx_parse_int(v, 2, 1 << 24, &ctx))
                return qtx_usage_error("--ctx '%s': expected a token count >= 2", v);
        } else if ((v = qtx_opt_value(argc, argv, &i, "--windows", NULL, &missing))) {
            if (qtx_parse_int(v, 1, (long long)1 << 40, &windows))
                return qtx_usage_error("--windows '%s': expected a count >= 1", v);
        } else if ((v = qtx_opt_value(argc, argv, &i, "--threads", NULL, &missing))) {
            if (qtx_parse_int(v, 1, 4096, &threads))
                return qtx_usage_error("--threads '%s': expected an integer in [1, 4096]", v);
        } else if ((v = qtx_opt_value(argc, argv, &i, "--kv-quant", NULL, &missing))) {
            if (qtx_parse_kv_types(v, &kv_k, &kv_v))
                return qtx_usage_error("--kv-quant '%s': expected f32, q8 or q4, or K,V (q4,q8)",
                                       v);
        } else if (missing) {
            return qtx_usage_error("option '%s' needs a value; see 'qtx eval --help'", s);
        } else if (s[0] == '-' && s[1]) {
            return qtx_usage_error("unknown option '%s'; see 'qtx eval --help'", s);
        } else if (!model) {
            model = s;
        } else {
            return qtx_usage_error("unexpected argument '%s': qtx eval takes one MODEL", s);
        }
    }
    if (!model || !data) return qtx_usage_error("usage: qtx eval MODEL --data DIR");
    omp_set_num_threads(threads > 0 ? (int)threads : qtx_n_cores());
    qtx_err e = {0};
    qtx_infer_model m;
    if (qtx_open_model(&m, model, use_mmap, &e)) return qtx_report(&e);
    char glob[4200];
    if (strchr(data, '*') || strstr(data, ".h5"))
        snprintf(glob, sizeof glob, "%s", data);
    else
        snprintf(glob, sizeof glob, "%s/val_*.h5", data);
    if (ctx == 0) ctx = m.cfg.max_seq_len < 256 ? m.cfg.max_seq_len : 256;
    const int T = (int)ctx - 1; /* a window is T + 1 tokens: inputs and shifted targets */
    qtx_loader *ld = NULL;
    qtx_loader_options o = {0};
    o.glob = glob;
    o.seq_len = T;
    o.global_batch = 1;
    o.dp_size = 1;
    o.tokenizer_hash = m.tokenizer_hash; /* "" (unknown): the data's own is adopted */
    o.vocab_size = m.cfg.vocab_size;
    int rc = qtx_loader_open(&ld, &o, &e);
    int32_t *win = NULL;
    float *logits = NULL;
    double loss = 0.0;
    long long tokens = 0, n_win = 0;
    if (rc) goto out;
    if ((rc = qtx_infer_start(&m, ctx, (qtx_kv_type)kv_k, (qtx_kv_type)kv_v, T, &e))) goto out;
    if (kv_compare && (rc = qtx_infer_compare_kv(&m, &e))) goto out;
    const long long total = qtx_loader_samples_per_epoch(ld);
    n_win = windows > 0 && windows < total ? windows : total;
    win = qtx_malloc((size_t)(T + 1) * sizeof *win);
    logits = qtx_malloc((size_t)T * m.cfg.vocab_size * sizeof(float));
    const int64_t V = m.cfg.vocab_size;
    const double t0 = qtx_now_s();
    for (long long w = 0; w < n_win && !rc; w++) {
        if ((rc = qtx_loader_next(ld, win, &e))) break;
        qtx_infer_reset(&m, &e);
        if ((rc = qtx_infer_forward(&m, win, T, logits, 1, &e))) break;
        for (int t = 0; t < T; t++) {
            const float *z = logits + (int64_t)t * V;
            float mx = z[0];
            for (int64_t j = 1; j < V; j++) mx = z[j] > mx ? z[j] : mx;
            double s = 0.0;
            for (int64_t j = 0; j < V; j++) s += exp((double)z[j] - mx);
            /* s >= 1: the maximum's own term is exp(0) */
            // cppcheck-suppress invalidFunctionArg
            loss += log(s) + mx - z[win[t + 1]];
        }
        tokens += T;
    }
    if (!rc) {
        const double mean = loss / (double)tokens;
        printf("loss %.6f perplexity %.4f tokens %lld\n", mean, exp(mean), tokens);
        if (kv_compare)
            qtx_log_info("attention vs an f32 KV cache: cosine min %.6f mean %.6f over %lld head "
                         "outputs",
                         m.cos_min, m.cos_sum / (double)(m.cos_n ? m.cos_n : 1),
                         (long long)m.cos_n);
        qtx_log_info("%lld windows of %d tokens in %.1f s (%s weights, %s keys, %s values)", n_win,
                     T, qtx_now_s() - t0, qtx_qtype_get(m.main_type)->name,
                     qtx_kv_type_name((qtx_kv_type)kv_k), qtx_kv_type_name((qtx_kv_type)kv_v));
    }
out:
    free(win);
    free(logits);
    if (ld) qtx_loader_close(ld);
    qtx_infer_free(&m);
    return rc ? qtx_report(&e) : 0;
}
