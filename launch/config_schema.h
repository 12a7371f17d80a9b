/* config_schema.h: the schema table behind config.h (private to launch/).
 *
 * One entry per field of qtx_config: where it lives, its type, default (as text, parsed
 * like user input), allowed range and meaning. Defaults, the YAML parser, `--set`,
 * `--print-config` and docs/CONFIG.md all read this table and nothing else.
 */
#ifndef QTX_CONFIG_SCHEMA_H
#define QTX_CONFIG_SCHEMA_H

#include <stddef.h>

#include "config.h"

typedef enum qtx_cfg_type {
    QTX_CFG_INT,    /* int, decimal */
    QTX_CFG_U64,    /* uint64_t, decimal, full range */
    QTX_CFG_FLOAT,  /* float */
    QTX_CFG_DOUBLE, /* double */
    QTX_CFG_BOOL,   /* int 0/1, spelt true/false */
    QTX_CFG_STRING, /* char[size], NUL-terminated */
    QTX_CFG_ENUM,   /* an enum (int-sized), spelt by names[] */
} qtx_cfg_type;

enum {
    QTX_CFG_AUTO = 1u << 0,     /* int: the word `auto` stands for 0 */
    QTX_CFG_MIN_OPEN = 1u << 1, /* float/double: min itself is excluded */
    QTX_CFG_MAX_OPEN = 1u << 2, /* float/double: max itself is excluded */
};

typedef struct qtx_cfg_key {
    const char *section; /* "model" */
    const char *name;    /* "dim" */
    const char *path;    /* "model.dim" */
    qtx_cfg_type type;
    unsigned flags;
    size_t offset; /* into qtx_config */
    size_t size;   /* of the field */
    const char *def;
    double min, max;          /* int/float/double; inclusive unless flagged open */
    const char *const *names; /* enum: names[i] is value i; NULL-terminated */
    const char *meaning;
} qtx_cfg_key;

typedef struct qtx_cfg_section {
    const char *name;
    const char *meaning;
} qtx_cfg_section;

#define QTX_CFG_MAX_KEYS 64

extern const qtx_cfg_key qtx_cfg_keys[];
extern const int qtx_cfg_n_keys;
extern const qtx_cfg_section qtx_cfg_sections[];
extern const int qtx_cfg_n_sections;

/* Index of the key "section.name" (name of n bytes), or -1. */
int qtx_cfg_find(const char *section, const char *name, size_t n);
/* Index of the dotted key "section.name" of n bytes, or -1. */
int qtx_cfg_find_path(const char *path, size_t n);
/* Index of a section, or -1. */
int qtx_cfg_find_section(const char *name);

/* Parses `text` (len bytes, may hold NULs) as key k's type and range into the config.
 * Returns 0, or -1 with `why` set to the problem and its fix without the key name, e.g.
 * "expected an integer, got 'abc'" or "0 is out of range [1, 65536]". */
int qtx_cfg_parse(const qtx_cfg_key *k, const char *text, size_t len, qtx_config *c, char *why,
                  size_t why_n);

/* Checks the current value of key k against its range (for configs built in code); same
 * contract as qtx_cfg_parse. */
int qtx_cfg_check_range(const qtx_cfg_key *k, const qtx_config *c, char *why, size_t why_n);

/* Writes key k's value as YAML text that qtx_cfg_parse reads back to the same bits
 * (strings double-quoted and escaped). */
void qtx_cfg_format(const qtx_cfg_key *k, const qtx_config *c, char *buf, size_t n);

/* What a value must look like, for "expected ..." phrases: "an integer", "a number",
 * "true or false", "a string", "one of cosine, linear, wsd, constant". */
void qtx_cfg_expected(const qtx_cfg_key *k, char *buf, size_t n);

/* Shortest decimal text that reads back to the same double (float, when is_float). */
void qtx_cfg_format_real(double v, int is_float, char *buf, size_t n);

/* The allowed values as docs text: "[1, 65536]", "(0, 10]", "cosine, linear, ...". */
void qtx_cfg_range_text(const qtx_cfg_key *k, char *buf, size_t n);

/* The type as docs text: "int", "float", "bool", "string", "enum", "int or auto". */
const char *qtx_cfg_type_text(const qtx_cfg_key *k);

/* Optimal string alignment distance (edits, with swaps of neighbours counting one), ignoring
 * ASCII case: for "did you mean" only. */
int qtx_cfg_distance(const char *a, const char *b);

/* Copies text (len bytes) into buf for quoting in a one-line message: control bytes become
 * '?', and long text is cut with "...". */
void qtx_cfg_show(const char *text, size_t len, char *buf, size_t n);

#endif
