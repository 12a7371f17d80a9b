/* config.c: the run configuration: YAML loading with libyaml (every error names
 * file:line:column and the fix), `--set` overrides, cross-field validation, printing as
 * YAML and the Markdown reference. What the keys are lives in config_schema.c. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config_schema.h"

/* Where each key's value came from, so a cross-field error can point at the line that set
 * it (or at the --set that did). */
enum { FROM_DEFAULT = 0, FROM_FILE, FROM_SET };
typedef struct origin {
    int from;
    int line, col; /* FROM_FILE: 1-based position of the key */
    int set;       /* FROM_SET: index into sets */
} origin;

typedef struct source {
    const char *path;
    const char *text; /* the whole file */
    size_t len;
    qtx_config *c;
    origin *o;
    qtx_err *e;
} source;

#define MAX_CONFIG_BYTES (1u << 20)
#define SHOW 96                           /* buffer for qtx_cfg_show */
#define VALUE_MAX (4 * QTX_PATH_MAX + 16) /* a formatted value, strings escaped */

void qtx_config_defaults(qtx_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < qtx_cfg_n_keys; i++) {
        const qtx_cfg_key *k = &qtx_cfg_keys[i];
        char why[256];
        const int rc = qtx_cfg_parse(k, k->def, strlen(k->def), c, why, sizeof why);
        QTX_CHECK(rc == 0, "schema default of %s: %s", k->path, why);
    }
}

/* ---- reading the file -------------------------------------------------------------------- */

static int read_whole(const char *path, char **out, size_t *out_len, qtx_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return qtx_fail(e, QTX_ERR_INPUT, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = qtx_malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = qtx_realloc(buf, cap);
        }
        const size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > MAX_CONFIG_BYTES) {
            fclose(f);
            free(buf);
            return qtx_fail(e, QTX_ERR_INPUT,
                            "'%s' is larger than 1 MiB; a config is a short YAML file, so check "
                            "that this is the right file",
                            path);
        }
        if (got == 0) {
            if (ferror(f)) {
                const int err = errno;
                fclose(f);
                free(buf);
                return qtx_fail(e, QTX_ERR_INPUT, "cannot read '%s': %s", path, strerror(err));
            }
            break;
        }
    }
    fclose(f);
    *out = buf;
    *out_len = n;
    return QTX_OK;
}

/* ---- error helpers ----------------------------------------------------------------------- */

static int fail_at(const source *s, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_at(const source *s, yaml_mark_t m, const char *fmt, ...) {
    char body[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    return qtx_fail(s->e, QTX_ERR_INPUT, "%s:%zu:%zu: %s", s->path, m.line + 1, m.column + 1, body);
}

/* How a node reads in "got ..." phrases. */
static void describe(const yaml_node_t *n, char *buf, size_t len) {
    if (n->type == YAML_MAPPING_NODE) {
        snprintf(buf, len, "a mapping");
    } else if (n->type == YAML_SEQUENCE_NODE) {
        snprintf(buf, len, "a list");
    } else {
        char v[SHOW];
        qtx_cfg_show((const char *)n->data.scalar.value, n->data.scalar.length, v, sizeof v);
        snprintf(buf, len, "'%s'", v);
    }
}

static int is_empty_plain(const yaml_node_t *n) {
    return n->type == YAML_SCALAR_NODE && n->data.scalar.length == 0 &&
           n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* " (did you mean 'model.dim'?)" for the key nearest to `typed` ("section.key" or a bare
 * key), or "" when none is close. A key of another section counts one edit more, so
 * 'model.seq_len' suggests 'data.seq_len'. */
static void suggest_key(const char *typed, char *buf, size_t n) {
    const char *dot = strchr(typed, '.');
    const char *name = dot ? dot + 1 : typed;
    int best = -1, best_d = 2 + (int)strlen(name) / 4;
    for (int i = 0; i < qtx_cfg_n_keys; i++) {
        int d = qtx_cfg_distance(typed, qtx_cfg_keys[i].path);
        const int d2 = qtx_cfg_distance(name, qtx_cfg_keys[i].name) + 1;
        if (d2 < d) d = d2;
        if (d < best_d) best = i, best_d = d;
    }
    if (best >= 0)
        snprintf(buf, n, " (did you mean '%s'?)", qtx_cfg_keys[best].path);
    else
        buf[0] = '\0';
}

static void list_keys(const char *section, char *buf, size_t n) {
    size_t j = 0;
    buf[0] = '\0';
    for (int i = 0; i < qtx_cfg_n_keys; i++) {
        if (strcmp(qtx_cfg_keys[i].section, section)) continue;
        const int w = snprintf(buf + j, n - j, "%s%s", j ? ", " : "", qtx_cfg_keys[i].name);
        if (w < 0 || (size_t)w >= n - j) break;
        j += (size_t)w;
    }
}

static void list_sections(char *buf, size_t n) {
    size_t j = 0;
    buf[0] = '\0';
    for (int i = 0; i < qtx_cfg_n_sections; i++) {
        const int w = snprintf(buf + j, n - j, "%s%s", i ? ", " : "", qtx_cfg_sections[i].name);
        if (w < 0 || (size_t)w >= n - j) break;
        j += (size_t)w;
    }
}

static int unknown_section(const source *s, const yaml_node_t *key) {
    char name[SHOW];
    qtx_cfg_show((const char *)key->data.scalar.value, key->data.scalar.length, name, sizeof name);
    /* A section typo, or a key written at the top level instead of inside its section. */
    int best_sec = -1, best_key = -1, best_d = 2 + (int)strlen(name) / 4;
    for (int i = 0; i < qtx_cfg_n_sections; i++) {
        const int d = qtx_cfg_distance(name, qtx_cfg_sections[i].name);
        if (d < best_d) best_sec = i, best_key = -1, best_d = d;
    }
    for (int i = 0; i < qtx_cfg_n_keys; i++) {
        const int d = qtx_cfg_distance(name, qtx_cfg_keys[i].name) + 1;
        if (d < best_d) best_key = i, best_sec = -1, best_d = d;
    }
    if (best_sec >= 0)
        return fail_at(s, key->start_mark, "unknown section '%s' (did you mean '%s'?)", name,
                       qtx_cfg_sections[best_sec].name);
    if (best_key >= 0)
        return fail_at(s, key->start_mark, "unknown section '%s' (did you mean '%s' under '%s:'?)",
                       name, qtx_cfg_keys[best_key].name, qtx_cfg_keys[best_key].section);
    char all[256];
    list_sections(all, sizeof all);
    return fail_at(s, key->start_mark, "unknown section '%s'; the sections are %s", name, all);
}

static int unknown_key(const source *s, const char *section, const yaml_node_t *key) {
    char name[SHOW], path[SHOW + 32], hint[128];
    qtx_cfg_show((const char *)key->data.scalar.value, key->data.scalar.length, name, sizeof name);
    snprintf(path, sizeof path, "%s.%s", section, name);
    suggest_key(path, hint, sizeof hint);
    if (hint[0]) return fail_at(s, key->start_mark, "unknown key '%s'%s", path, hint);
    char keys[512];
    list_keys(section, keys, sizeof keys);
    return fail_at(s, key->start_mark, "unknown key '%s'; the keys of %s are %s", path, section,
                   keys);
}

/* libyaml's own errors: its problem text at its position, plus what usually fixes it. */
static int syntax_error(const source *s, const yaml_parser_t *p) {
    if (p->error == YAML_MEMORY_ERROR) QTX_CHECK(0, "out of memory parsing '%s'", s->path);
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_READER_ERROR) {
        /* Only a byte offset: count lines up to it. */
        yaml_mark_t m = {0, 0, 0};
        for (size_t i = 0; i < p->problem_offset && i < s->len; i++) {
            if (s->text[i] == '\n')
                m.line++, m.column = 0;
            else
                m.column++;
        }
        return fail_at(s, m, "cannot read the YAML: %s; save the file as UTF-8 text", problem);
    }
    const yaml_mark_t m = p->problem_mark;
    if (p->error == YAML_COMPOSER_ERROR && p->context && strstr(p->context, "duplicate anchor"))
        return fail_at(s, m, "YAML error: duplicate anchor (first at line %zu); rename one of them",
                       p->context_mark.line + 1);
    if (p->error == YAML_COMPOSER_ERROR && strstr(problem, "undefined alias"))
        return fail_at(s, m, "YAML error: %s; define an anchor (&name) before its alias (*name)",
                       problem);
    if (m.index < s->len && s->text[m.index] == '\t')
        return fail_at(s, m, "YAML syntax error: %s (a tab); indent with spaces, not tabs",
                       problem);
    if (p->context)
        return fail_at(s, m,
                       "YAML syntax error: %s (%s); check the indentation, colons and quotes there",
                       problem, p->context);
    return fail_at(s, m, "YAML syntax error: %s; check the indentation, colons and quotes there",
                   problem);
}

/* ---- walking the document ---------------------------------------------------------------- */

static int load_section(source *s, yaml_document_t *doc, const char *section,
                        const yaml_node_t *map) {
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        const yaml_node_t *key = yaml_document_get_node(doc, pr->key);
        const yaml_node_t *val = yaml_document_get_node(doc, pr->value);
        if (key->type != YAML_SCALAR_NODE) {
            char got[SHOW + 8];
            describe(key, got, sizeof got);
            return fail_at(s, key->start_mark, "expected a key name in section '%s', got %s",
                           section, got);
        }
        const int i =
            qtx_cfg_find(section, (const char *)key->data.scalar.value, key->data.scalar.length);
        if (i < 0) return unknown_key(s, section, key);
        const qtx_cfg_key *k = &qtx_cfg_keys[i];
        if (s->o[i].from == FROM_FILE)
            return fail_at(s, key->start_mark,
                           "duplicate key '%s' (first set at line %d); keep one", k->path,
                           s->o[i].line);
        char why[512];
        if (val->type != YAML_SCALAR_NODE) {
            char got[SHOW + 8], expected[256];
            describe(val, got, sizeof got);
            qtx_cfg_expected(k, expected, sizeof expected);
            return fail_at(s, val->start_mark, "%s: expected %s, got %s", k->path, expected, got);
        }
        const char *text = (const char *)val->data.scalar.value;
        const size_t len = val->data.scalar.length;
        /* A plain ~ or null in YAML means "no value", which a string key must not swallow
         * as the text "null". */
        if (k->type == QTX_CFG_STRING && val->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
            (!strcmp(text, "~") || !strcmp(text, "null") || !strcmp(text, "Null") ||
             !strcmp(text, "NULL")))
            return fail_at(s, val->start_mark,
                           "%s: '%s' is YAML's null, not a string; write \"\" for an empty value",
                           k->path, text);
        if (qtx_cfg_parse(k, text, len, s->c, why, sizeof why))
            return fail_at(s, val->start_mark, "%s: %s", k->path, why);
        s->o[i].from = FROM_FILE;
        s->o[i].line = (int)key->start_mark.line + 1;
        s->o[i].col = (int)key->start_mark.column + 1;
    }
    return QTX_OK;
}

static int load_root(source *s, yaml_document_t *doc) {
    const yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root || is_empty_plain(root))
        return qtx_fail(s->e, QTX_ERR_INPUT,
                        "%s: the file is empty; a config needs at least 'data:' with 'train:' "
                        "(see configs/tiny.yaml)",
                        s->path);
    if (root->type != YAML_MAPPING_NODE) {
        char got[SHOW + 8];
        describe(root, got, sizeof got);
        return fail_at(s, root->start_mark,
                       "expected sections like 'model:' and 'data:' at the top level, got %s", got);
    }
    int seen_line[16] = {0};
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        const yaml_node_t *key = yaml_document_get_node(doc, pr->key);
        const yaml_node_t *val = yaml_document_get_node(doc, pr->value);
        if (key->type != YAML_SCALAR_NODE) {
            char got[SHOW + 8];
            describe(key, got, sizeof got);
            return fail_at(s, key->start_mark, "expected a section name, got %s", got);
        }
        const int sec = qtx_cfg_find_section((const char *)key->data.scalar.value);
        if (sec < 0 || strlen((const char *)key->data.scalar.value) != key->data.scalar.length)
            return unknown_section(s, key);
        const char *name = qtx_cfg_sections[sec].name;
        if (seen_line[sec])
            return fail_at(s, key->start_mark,
                           "duplicate section '%s' (first at line %d); merge the two into one",
                           name, seen_line[sec]);
        seen_line[sec] = (int)key->start_mark.line + 1;
        if (is_empty_plain(val)) continue; /* "parallel:" with every key commented out */
        if (val->type != YAML_MAPPING_NODE) {
            char got[SHOW + 8];
            describe(val, got, sizeof got);
            return fail_at(s, val->start_mark,
                           "section '%s' must hold 'key: value' lines, got %s; put its keys on "
                           "the lines below '%s:', indented",
                           name, got, name);
        }
        const int rc = load_section(s, doc, name, val);
        if (rc) return rc;
    }
    return QTX_OK;
}

static int load_file(qtx_config *c, const char *path, origin *o, qtx_err *e) {
    char *text = NULL;
    size_t len = 0;
    int rc = read_whole(path, &text, &len, e);
    if (rc) return rc;
    source s = {path, text, len, c, o, e};
    yaml_parser_t p;
    QTX_CHECK(yaml_parser_initialize(&p), "out of memory initialising libyaml");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    yaml_document_t doc;
    if (!yaml_parser_load(&p, &doc)) {
        rc = syntax_error(&s, &p);
    } else {
        rc = load_root(&s, &doc);
        yaml_document_delete(&doc);
        /* A second document ("---" again) would be silently ignored otherwise. */
        if (rc == QTX_OK) {
            if (!yaml_parser_load(&p, &doc)) {
                rc = syntax_error(&s, &p);
            } else {
                const yaml_node_t *r2 = yaml_document_get_root_node(&doc);
                if (r2)
                    rc = fail_at(&s, r2->start_mark,
                                 "a second YAML document; a config is one document, so remove "
                                 "the '---' and merge it");
                yaml_document_delete(&doc);
            }
        }
    }
    yaml_parser_delete(&p);
    free(text);
    return rc;
}

/* ---- --set ------------------------------------------------------------------------------- */

static int apply_set(qtx_config *c, const char *set, int idx, origin *o, qtx_err *e) {
    char shown[SHOW];
    qtx_cfg_show(set, strlen(set), shown, sizeof shown);
    const char *eq = strchr(set, '=');
    if (!eq || eq == set)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "--set %s: expected section.key=value, e.g. --set model.dim=256", shown);
    const int i = qtx_cfg_find_path(set, (size_t)(eq - set));
    if (i < 0) {
        char key[SHOW], hint[128];
        qtx_cfg_show(set, (size_t)(eq - set), key, sizeof key);
        suggest_key(key, hint, sizeof hint);
        if (hint[0])
            return qtx_fail(e, QTX_ERR_INPUT, "--set %s: unknown key '%s'%s", shown, key, hint);
        return qtx_fail(e, QTX_ERR_INPUT,
                        "--set %s: unknown key '%s'; keys are section.key, e.g. model.dim "
                        "(see 'qtx config --docs')",
                        shown, key);
    }
    const qtx_cfg_key *k = &qtx_cfg_keys[i];
    char why[512];
    if (qtx_cfg_parse(k, eq + 1, strlen(eq + 1), c, why, sizeof why))
        return qtx_fail(e, QTX_ERR_INPUT, "--set %s: %s: %s", shown, k->path, why);
    o[i].from = FROM_SET;
    o[i].set = idx;
    return QTX_OK;
}

/* ---- validation -------------------------------------------------------------------------- */

typedef struct vctx {
    const qtx_config *c;
    const char *path;
    const origin *o; /* NULL: positions unknown */
    const char *const *sets;
} vctx;

/* Fails with the message prefixed by where the first of the named keys was set: a --set
 * first (it overrode the file), else its line in the file, else just the file. */
static int vfail(const vctx *v, qtx_err *e, const char *k1, const char *k2, const char *k3,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int vfail(const vctx *v, qtx_err *e, const char *k1, const char *k2, const char *k3,
                 const char *fmt, ...) {
    char body[800], where[SHOW + 16 + QTX_PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    const char *keys[3] = {k1, k2, k3};
    int pick = -1;
    for (int pass = 0; pass < 2 && pick < 0 && v->o; pass++)
        for (int j = 0; j < 3 && pick < 0; j++) {
            if (!keys[j]) continue;
            const int i = qtx_cfg_find_path(keys[j], strlen(keys[j]));
            QTX_CHECK(i >= 0, "validate names unknown key %s", keys[j]);
            if (v->o[i].from == (pass == 0 ? FROM_SET : FROM_FILE)) pick = i;
        }
    if (pick >= 0 && v->o[pick].from == FROM_SET) {
        char shown[SHOW];
        const char *set = v->sets[v->o[pick].set];
        qtx_cfg_show(set, strlen(set), shown, sizeof shown);
        snprintf(where, sizeof where, "--set %s: ", shown);
    } else if (pick >= 0) {
        snprintf(where, sizeof where, "%s:%d:%d: ", v->path, v->o[pick].line, v->o[pick].col);
    } else if (v->path) {
        snprintf(where, sizeof where, "%s: ", v->path);
    } else {
        where[0] = '\0';
    }
    return qtx_fail(e, QTX_ERR_INPUT, "%s%s", where, body);
}

/* Divisors of n, largest first, as "8, 4, 2 or 1". */
static void divisors(int n, char *buf, size_t len) {
    int d[16], k = 0;
    for (int i = n; i >= 1 && k < 16; i--)
        if (n % i == 0) d[k++] = i;
    size_t j = 0;
    buf[0] = '\0';
    for (int i = 0; i < k; i++) {
        const int w = snprintf(buf + j, len - j, "%s%d",
                               i == 0       ? ""
                               : i + 1 == k ? " or "
                                            : ", ",
                               d[i]);
        if (w < 0 || (size_t)w >= len - j) break;
        j += (size_t)w;
    }
}

/* The positive multiple of m nearest to x. */
static long long nearest_multiple(long long x, long long m) {
    long long r = (x + m / 2) / m * m;
    return r > 0 ? r : m;
}

static int validate_at(const vctx *v, qtx_err *e) {
    const qtx_config *c = v->c;
    const qtx_model_config *m = &c->model;
    const qtx_data_config *d = &c->data;
    const qtx_parallel_config *p = &c->parallel;
    char why[512], list[128], a[48], b[48];

    /* Ranges first: a config built in code has not been through the parser. */
    for (int i = 0; i < qtx_cfg_n_keys; i++) {
        const qtx_cfg_key *k = &qtx_cfg_keys[i];
        if (qtx_cfg_check_range(k, c, why, sizeof why))
            return vfail(v, e, k->path, NULL, NULL, "%s: %s", k->path, why);
    }

    if (m->n_heads % m->n_kv_heads) {
        divisors(m->n_heads, list, sizeof list);
        return vfail(v, e, "model.n_kv_heads", "model.n_heads", NULL,
                     "model.n_heads = %d is not a multiple of model.n_kv_heads = %d; set "
                     "model.n_kv_heads to a divisor of %d (%s)",
                     m->n_heads, m->n_kv_heads, m->n_heads, list);
    }
    if (m->dim % m->n_heads)
        return vfail(v, e, "model.dim", "model.n_heads", NULL,
                     "model.dim = %d is not a multiple of model.n_heads = %d; set model.dim to a "
                     "multiple of %d (e.g. %lld) or model.n_heads to a divisor of %d",
                     m->dim, m->n_heads, m->n_heads, nearest_multiple(m->dim, 2LL * m->n_heads),
                     m->dim);
    if ((m->dim / m->n_heads) % 2)
        return vfail(v, e, "model.dim", "model.n_heads", NULL,
                     "head size model.dim / model.n_heads = %d / %d = %d is odd, but RoPE rotates "
                     "pairs; set model.dim to a multiple of %d (e.g. %lld)",
                     m->dim, m->n_heads, m->dim / m->n_heads, 2 * m->n_heads,
                     nearest_multiple(m->dim, 2LL * m->n_heads));
    if (d->seq_len > m->max_seq_len)
        return vfail(v, e, "data.seq_len", "model.max_seq_len", NULL,
                     "data.seq_len = %d exceeds model.max_seq_len = %d; lower data.seq_len or "
                     "raise model.max_seq_len to %d",
                     d->seq_len, m->max_seq_len, d->seq_len);

    if (!d->train[0])
        return vfail(v, e, "data.train", NULL, NULL,
                     "data.train is empty; set it to a glob of training shards written by 'qtx "
                     "prep', e.g. data/tiny/train_*.h5");
    if (d->global_batch % d->micro_batch)
        return vfail(v, e, "data.global_batch", "data.micro_batch", NULL,
                     "data.global_batch = %d is not a multiple of data.micro_batch = %d; set "
                     "data.global_batch to a multiple of %d (e.g. %lld) or data.micro_batch to a "
                     "divisor of %d",
                     d->global_batch, d->micro_batch, d->micro_batch,
                     nearest_multiple(d->global_batch, d->micro_batch), d->global_batch);
    if (p->dp > 0 && d->global_batch % ((long long)p->dp * d->micro_batch)) {
        const long long per = (long long)p->dp * d->micro_batch;
        return vfail(v, e, "data.global_batch", "parallel.dp", "data.micro_batch",
                     "data.global_batch = %d is not a multiple of parallel.dp x data.micro_batch "
                     "= %d x %d = %lld, so the ranks cannot get whole micro-batches; set "
                     "data.global_batch to a multiple of %lld (e.g. %lld)",
                     d->global_batch, p->dp, d->micro_batch, per, per,
                     nearest_multiple(d->global_batch, per));
    }
    if (p->micro_batches > 0 && p->dp > 0) {
        const long long derived = d->global_batch / ((long long)p->dp * d->micro_batch);
        if (p->micro_batches != derived)
            return vfail(v, e, "parallel.micro_batches", "data.global_batch", "data.micro_batch",
                         "parallel.micro_batches = %d contradicts data.global_batch / "
                         "(parallel.dp x data.micro_batch) = %d / (%d x %d) = %lld; set "
                         "parallel.micro_batches to %lld, or to 0 to derive it",
                         p->micro_batches, d->global_batch, p->dp, d->micro_batch, derived,
                         derived);
    }
    if (p->micro_batches > 0 && p->dp == 0 &&
        d->global_batch % ((long long)p->micro_batches * d->micro_batch))
        return vfail(v, e, "parallel.micro_batches", "data.global_batch", "data.micro_batch",
                     "data.global_batch = %d is not a multiple of data.micro_batch x "
                     "parallel.micro_batches = %d x %d = %lld, so no data-parallel size fits; "
                     "set parallel.micro_batches to 0 to derive it",
                     d->global_batch, d->micro_batch, p->micro_batches,
                     (long long)d->micro_batch * p->micro_batches);
    if (c->train.eval_every > 0 && !d->val[0])
        return vfail(v, e, "train.eval_every", "data.val", NULL,
                     "train.eval_every = %d but data.val is empty; set data.val to a glob of "
                     "validation shards (e.g. data/tiny/val_*.h5) or train.eval_every to 0",
                     c->train.eval_every);

    if (c->optim.min_lr > c->optim.lr) {
        qtx_cfg_format_real(c->optim.min_lr, 0, a, sizeof a);
        qtx_cfg_format_real(c->optim.lr, 0, b, sizeof b);
        return vfail(v, e, "optim.min_lr", "optim.lr", NULL,
                     "optim.min_lr = %s is above optim.lr = %s; set optim.min_lr to at most %s "
                     "(a tenth of lr is usual)",
                     a, b, b);
    }
    if (c->optim.warmup_steps > c->train.steps)
        return vfail(v, e, "optim.warmup_steps", "train.steps", NULL,
                     "optim.warmup_steps = %d exceeds train.steps = %d; set optim.warmup_steps to "
                     "at most %d (a tenth of the steps is usual)",
                     c->optim.warmup_steps, c->train.steps, c->train.steps);

    const struct {
        const char *key;
        int value;
    } split[] = {{"model.n_heads", m->n_heads},
                 {"model.n_kv_heads", m->n_kv_heads},
                 {"model.ffn_dim", m->ffn_dim},
                 {"model.vocab_size", m->vocab_size}};
    for (int i = 0; i < 4; i++)
        if (split[i].value % p->tp)
            return vfail(v, e, "parallel.tp", split[i].key, NULL,
                         "parallel.tp = %d does not divide %s = %d; tensor parallelism splits it "
                         "evenly, so use a parallel.tp that divides model.n_heads, "
                         "model.n_kv_heads, model.ffn_dim and model.vocab_size",
                         p->tp, split[i].key, split[i].value);
    if (p->pp > m->n_layers)
        return vfail(v, e, "parallel.pp", "model.n_layers", NULL,
                     "parallel.pp = %d exceeds model.n_layers = %d; each pipeline stage needs a "
                     "layer, so set parallel.pp to at most %d",
                     p->pp, m->n_layers, m->n_layers);
    if (p->zero > 0 && p->dp == 1)
        return vfail(v, e, "parallel.zero", "parallel.dp", NULL,
                     "parallel.zero = %d shards across data-parallel ranks, but parallel.dp = 1; "
                     "set parallel.zero to 0, or parallel.dp to auto or more than 1",
                     p->zero);
    const qtx_device_config *dv = &c->device;
    if (dv->precision == QTX_PRECISION_BF16 && dv->type == QTX_DEVICE_CPU)
        return vfail(v, e, "device.precision", "device.type", NULL,
                     "device.precision = bf16 needs the tensor cores of device.type: cuda (or "
                     "staged, which emulates them), but device.type = cpu; set "
                     "device.precision to fp32");
    return QTX_OK;
}

int qtx_config_validate(const qtx_config *c, const char *path, qtx_err *e) {
    const vctx v = {c, path, NULL, NULL};
    return validate_at(&v, e);
}

int qtx_config_load(qtx_config *c, const char *path, const char *const *sets, int n_sets,
                    qtx_err *e) {
    QTX_CHECK(qtx_cfg_n_keys <= QTX_CFG_MAX_KEYS, "schema larger than QTX_CFG_MAX_KEYS");
    origin o[QTX_CFG_MAX_KEYS];
    memset(o, 0, sizeof o);
    qtx_config_defaults(c);
    int rc;
    if (path && (rc = load_file(c, path, o, e))) return rc;
    for (int i = 0; i < n_sets; i++)
        if ((rc = apply_set(c, sets[i], i, o, e))) return rc;
    const vctx v = {c, path, o, sets};
    return validate_at(&v, e);
}

/* ---- printing and docs ------------------------------------------------------------------- */

void qtx_config_print(const qtx_config *c, FILE *f) {
    fprintf(f, "# Quadtrix run configuration (qtx train --print-config); "
               "'qtx train FILE' loads it back unchanged.\n");
    for (int s = 0; s < qtx_cfg_n_sections; s++) {
        const char *section = qtx_cfg_sections[s].name;
        fprintf(f, "%s%s:\n", s ? "\n" : "", section);
        for (int i = 0; i < qtx_cfg_n_keys; i++) {
            const qtx_cfg_key *k = &qtx_cfg_keys[i];
            if (strcmp(k->section, section)) continue;
            char value[VALUE_MAX];
            qtx_cfg_format(k, c, value, sizeof value);
            const int w = fprintf(f, "  %s: %s", k->name, value);
            fprintf(f, "%*s# %s\n", w < 30 ? 32 - w : 2, "", k->meaning);
        }
    }
}

static const char DOCS_INTRO[] =
    "# Configuration reference\n"
    "\n"
    "<!-- Generated by `qtx config --docs > docs/CONFIG.md` from launch/config_schema.c; do not\n"
    "     edit by hand (tests/integration/test_config_docs.sh checks it is current). -->\n"
    "\n"
    "`qtx train CONFIG.yaml` reads one YAML file of sections, each holding `key: value` lines:\n"
    "\n"
    "```yaml\n"
    "model:\n"
    "  dim: 256\n"
    "  n_layers: 4\n"
    "data:\n"
    "  train: data/tiny/train_*.h5\n"
    "```\n"
    "\n"
    "Keys left out keep the defaults below; `configs/tiny.yaml` and `configs/small.yaml` are\n"
    "complete examples. Parsing is strict: an unknown or misspelt key, a duplicate, a value of\n"
    "the wrong type or out of range is an error that names the file, line and column and\n"
    "suggests the fix, and `qtx train` exits with status 2 before creating any file.\n"
    "\n"
    "- `--set section.key=value` (repeatable) overrides a key after the file is read, e.g.\n"
    "  `qtx train configs/tiny.yaml --set optim.lr=1e-3 --set train.steps=50`.\n"
    "- `--resume latest|auto|PATH` is the same as `--set train.resume=...`.\n"
    "- `--print-config` prints the effective configuration as YAML (loadable by `qtx train`)\n"
    "  and exits without training.\n"
    "- `qtx config check FILE [--set ...]` only loads and validates a file and prints `ok`.\n"
    "\n"
    "Integers are decimal (no `1e3`, no leading zeros), booleans are `true` or `false`,\n"
    "strings may be quoted or not, and an empty string is written `\"\"`.\n";

static const char DOCS_RULES[] =
    "\n"
    "## Rules across keys\n"
    "\n"
    "Checked after the file and every `--set` are applied; the error points at the line that\n"
    "set one of the keys involved.\n"
    "\n"
    "- `model.n_heads` is a multiple of `model.n_kv_heads`.\n"
    "- `model.dim` is a multiple of `model.n_heads`, and the head size `dim / n_heads` is even\n"
    "  (RoPE rotates pairs of dimensions).\n"
    "- `data.seq_len` is at most `model.max_seq_len`.\n"
    "- `data.train` is not empty.\n"
    "- `data.global_batch` is a multiple of `data.micro_batch`, and of\n"
    "  `parallel.dp x data.micro_batch` when `parallel.dp` is not auto.\n"
    "- A non-zero `parallel.micro_batches` equals `global_batch / (dp x micro_batch)` (when\n"
    "  `dp` is auto, `micro_batch x micro_batches` divides `global_batch`).\n"
    "- `train.eval_every > 0` needs `data.val`.\n"
    "- `optim.min_lr` is at most `optim.lr`; `optim.warmup_steps` is at most `train.steps`.\n"
    "- `parallel.tp` divides `model.n_heads`, `model.n_kv_heads`, `model.ffn_dim` and\n"
    "  `model.vocab_size`; `parallel.pp` is at most `model.n_layers`.\n"
    "- `parallel.zero > 0` needs more than one data-parallel rank (`parallel.dp` auto or > 1).\n"
    "- `device.precision = bf16` needs `device.type = cuda` (or `staged`, which emulates it).\n";

void qtx_config_write_docs(FILE *f) {
    qtx_config defaults;
    qtx_config_defaults(&defaults);
    fputs(DOCS_INTRO, f);
    for (int s = 0; s < qtx_cfg_n_sections; s++) {
        const char *section = qtx_cfg_sections[s].name;
        fprintf(f, "\n## %s\n\n%s\n\n", section, qtx_cfg_sections[s].meaning);
        fprintf(f, "| key | type | default | range / values | meaning |\n");
        fprintf(f, "|---|---|---|---|---|\n");
        for (int i = 0; i < qtx_cfg_n_keys; i++) {
            const qtx_cfg_key *k = &qtx_cfg_keys[i];
            if (strcmp(k->section, section)) continue;
            char def[VALUE_MAX], range[256];
            qtx_cfg_format(k, &defaults, def, sizeof def);
            qtx_cfg_range_text(k, range, sizeof range);
            fprintf(f, "| `%s` | %s | `%s` | %s | %s |\n", k->path, qtx_cfg_type_text(k), def,
                    range, k->meaning);
        }
    }
    fputs(DOCS_RULES, f);
}
