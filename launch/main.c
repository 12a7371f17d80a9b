/* main.c: the qtx binary: dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand SUBCOMMANDS[] = {
    {"train", qtx_cmd_train, "train a model from a YAML config (run under mpirun for >1 rank)"},
    {"tokenizer", qtx_cmd_tokenizer, "train, encode or decode with a byte-level BPE tokenizer"},
    {"prep", qtx_cmd_prep, "tokenize text into HDF5 token shards"},
    {"config", qtx_cmd_config, "print the config reference (docs/CONFIG.md)"},
    {"ckpt", qtx_cmd_ckpt, "inspect, verify or compare checkpoints: ckpt info|verify|diff"},
    {"export", qtx_cmd_export, "write a checkpoint as GGUF for llama.cpp (f32, f16, q8_0, q4_0)"},
    {"generate", qtx_cmd_generate, "generate text from a GGUF file or a checkpoint"},
    {"eval", qtx_cmd_eval, "loss and perplexity of a model on validation shards"},
};
#define N_SUBCOMMANDS (int)(sizeof SUBCOMMANDS / sizeof SUBCOMMANDS[0])

static void usage(FILE *f) {
    fprintf(f, "usage: qtx <command> [options]   (qtx <command> --help for details)\n\n");
    for (int i = 0; i < N_SUBCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", SUBCOMMANDS[i].name, SUBCOMMANDS[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < N_SUBCOMMANDS; i++)
        if (!strcmp(argv[1], SUBCOMMANDS[i].name)) return SUBCOMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "qtx: unknown command '%s'; run 'qtx --help' for the list\n", argv[1]);
    return 2;
}
