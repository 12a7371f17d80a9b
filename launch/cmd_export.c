/* cmd_export.c: `qtx export CKPT -o model.gguf [--quant TYPE]`: a training checkpoint as a GGUF
 * file for llama.cpp (ckpt/gguf_export.h). */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "commands.h"
#include "gguf_export.h"
#include "log.h"

static const char HELP[] =
    "usage: qtx export CKPT -o model.gguf [--quant f32|f16|q8_0|q4_0] [options]\n"
    "\n"
    "Writes the checkpoint's model as a GGUF file llama.cpp runs (architecture llama, GPT-2\n"
    "byte-level BPE vocabulary from the checkpoint's tokenizer.json). CKPT is a checkpoint\n"
    "directory (out/ckpt/step_00000010), a checkpoint root (out/ckpt) or a run's out_dir\n"
    "(out); any layout that saved it. The file is written atomically.\n"
    "\n"
    "  -o, --output FILE   the .gguf file to write (required)\n"
    "  --quant TYPE        type of the 2-D weights (default f16): f32 (exact), f16, q8_0 or\n"
    "                      q4_0; a weight whose rows are not a multiple of 32 values stays f16\n"
    "                      under q8_0/q4_0; norm weights are always f32\n"
    "  --name NAME         general.name (default: the run's out_dir name)\n"
    "  --tokenizer FILE    use this tokenizer.json instead of the checkpoint's copy\n"
    "  --force             replace FILE when it exists\n"
    "  -q, --quiet         no summary on stderr\n"
    "  -h, --help          this help\n";

int qtx_cmd_export(int argc, char **argv) {
    qtx_export_options o = {.quant = QTX_Q_F16};
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int missing = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(HELP, stdout);
            return 0;
        } else if (!strcmp(a, "--force")) {
            o.force = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--output", "-o", &missing))) {
            o.out = v;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--quant", NULL, &missing))) {
            if (qtx_export_parse_quant(v, &o.quant))
                return qtx_usage_error("--quant '%s': expected f32, f16, q8_0 or q4_0", v);
        } else if ((v = qtx_opt_value(argc, argv, &i, "--name", NULL, &missing))) {
            o.name = v;
        } else if ((v = qtx_opt_value(argc, argv, &i, "--tokenizer", NULL, &missing))) {
            o.tokenizer = v;
        } else if (missing) {
            return qtx_usage_error("%s needs a value", a);
        } else if (a[0] == '-' && a[1]) {
            return qtx_usage_error("unknown option '%s'; see qtx export --help", a);
        } else if (!o.ckpt) {
            o.ckpt = a;
        } else {
            return qtx_usage_error("qtx export takes one checkpoint; unexpected '%s'", a);
        }
    }
    if (!o.ckpt)
        return qtx_usage_error("qtx export needs a checkpoint: qtx export CKPT -o model.gguf");
    if (!o.out) return qtx_usage_error("qtx export needs -o model.gguf");
    if (quiet) qtx_log_setup(QTX_LOG_WARN, -1, 0);
    qtx_export_stats st;
    qtx_err e = {0};
    if (qtx_gguf_export(&o, &st, &e)) return qtx_report(&e);
    if (!quiet) {
        static const char *const names[4] = {"f32", "f16", "q4_0", "q8_0"};
        char types[128] = "";
        size_t k = 0;
        for (int t = 0; t < 4; t++)
            if (st.n_by_type[t] && k < sizeof types)
                k += (size_t)snprintf(types + k, sizeof types - k, "%s%d %s", k ? ", " : "",
                                      st.n_by_type[t], names[t]);
        fprintf(stderr,
                "qtx export: %s (step %d) -> %s: %d tensors (%s), %lld parameters, %.2f MB\n",
                st.dir, st.step, o.out, st.n_tensors, types, (long long)st.n_params,
                (double)st.bytes / 1e6);
    }
    return 0;
}
