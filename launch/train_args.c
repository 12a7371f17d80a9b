/* train_args.c: the command line of `qtx train` (see train_args.h). Options are checked
 * before the config is loaded, so a typo in an option is reported as such even when the
 * file is also bad. */
#include "train_args.h"

#include <stdlib.h>
#include <string.h>

void qtx_train_usage(FILE *f) {
    fputs("usage: qtx train CONFIG.yaml [--set section.key=value]... [--print-config]\n"
          "                 [--resume latest|auto|PATH]\n"
          "\n"
          "Trains the model CONFIG.yaml describes (keys: docs/CONFIG.md or 'qtx config --docs';\n"
          "examples: configs/tiny.yaml, configs/small.yaml). Run under mpirun for more than one\n"
          "rank. A bad config or option is reported as one line naming the file, line and fix,\n"
          "and exits with status 2 before any file is written.\n"
          "\n"
          "  --set section.key=value  override a key after the file is read (repeatable; the\n"
          "                           last one wins), e.g. --set optim.lr=1e-3\n"
          "  --resume WHAT            latest: the run's newest checkpoint (fail if none);\n"
          "                           auto: it if there is one, else start fresh; or a\n"
          "                           checkpoint directory (same as --set train.resume=WHAT)\n"
          "  --print-config           print the effective config as YAML and exit\n"
          "  -h, --help               this help\n",
          f);
}

/* The value of option `name` at argv[*i], given as "--name=V" or "--name V"; NULL when
 * argv[*i] is another option. *missing is set when the value is absent. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, int *missing) {
    const char *arg = argv[*i];
    const size_t n = strlen(name);
    if (strncmp(arg, name, n)) return NULL;
    if (arg[n] == '=') return arg + n + 1;
    if (arg[n] != '\0') return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int qtx_train_args_parse(int argc, char **argv, qtx_train_args *a, qtx_err *e) {
    memset(a, 0, sizeof *a);
    qtx_config_defaults(&a->config);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            a->help = 1;
            return QTX_OK;
        }

    /* --set values and the --resume one, in order; +1 for "train.resume=..." */
    const char **sets = qtx_calloc((size_t)argc + 1, sizeof *sets);
    char *resume_set = NULL;
    int n_sets = 0, rc = QTX_OK;
    for (int i = 1; i < argc && rc == QTX_OK; i++) {
        const char *arg = argv[i], *v;
        int missing = 0;
        if (!strcmp(arg, "--print-config")) {
            a->print_config = 1;
        } else if ((v = opt_value(argc, argv, &i, "--set", &missing)) || missing) {
            if (missing)
                rc = qtx_fail(e, QTX_ERR_INPUT,
                              "option '--set' needs a value: --set section.key=value");
            else
                sets[n_sets++] = v;
        } else if ((v = opt_value(argc, argv, &i, "--resume", &missing)) || missing) {
            if (missing || !v[0]) {
                rc = qtx_fail(e, QTX_ERR_INPUT,
                              "option '--resume' needs a value: latest, auto or a checkpoint "
                              "path");
            } else if (strlen(v) >= sizeof a->config.train.resume) {
                rc = qtx_fail(e, QTX_ERR_INPUT, "--resume: the path is %zu bytes; the limit is %zu",
                              strlen(v), sizeof a->config.train.resume - 1);
            } else {
                free(resume_set); /* the last --resume wins */
                const size_t n = strlen("train.resume=") + strlen(v) + 1;
                resume_set = qtx_malloc(n);
                snprintf(resume_set, n, "train.resume=%s", v);
            }
        } else if (arg[0] == '-' && arg[1] != '\0') {
            rc = qtx_fail(e, QTX_ERR_INPUT,
                          "unknown option '%s' for 'qtx train'; see 'qtx train --help'", arg);
        } else if (a->config_path) {
            rc = qtx_fail(e, QTX_ERR_INPUT,
                          "unexpected argument '%s': qtx train takes one CONFIG.yaml (already "
                          "given '%s')",
                          arg, a->config_path);
        } else {
            a->config_path = arg;
        }
    }
    if (rc == QTX_OK && !a->config_path)
        rc = qtx_fail(
            e, QTX_ERR_INPUT,
            "missing CONFIG.yaml: usage: qtx train CONFIG.yaml [--set section.key=value]... "
            "(e.g. qtx train configs/tiny.yaml)");
    if (rc == QTX_OK) {
        if (resume_set) sets[n_sets++] = resume_set;
        rc = qtx_config_load(&a->config, a->config_path, sets, n_sets, e);
    }
    free(resume_set);
    free(sets);
    return rc;
}
