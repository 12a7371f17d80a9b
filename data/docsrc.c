/* docsrc.c: reading documents out of .txt / .jsonl inputs, gzipped or not (docsrc.h).
 *
 * Each input is read whole through zlib (gzread passes plain files through unchanged), then
 * cut into documents; a batch copies its documents into one arena so it can span files.
 */
#include "docsrc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "tokenizer.h"

struct qtx_docsrc {
    char **paths;
    int n_paths, next_path;
    qtx_docsrc_options o;
    char *doc_sep;
    char *field;
    /* the current file */
    const char *path;
    int jsonl;
    char *buf;
    size_t len, pos;
    int64_t line; /* JSONL: 1-based number of the line at pos */
    /* the current batch */
    qtx_bytes arena;
    size_t *offs; /* 2 per document: start, length in arena */
    qtx_doc *docs;
    size_t n_docs, cap_docs;
    int64_t bad_lines, bytes;
};

static int has_suffix(const char *s, size_t n, const char *suf) {
    size_t k = strlen(suf);
    return n >= k && !memcmp(s + n - k, suf, k);
}

static int check_readable(const char *path, qtx_err *e) {
    struct stat st;
    if (stat(path, &st))
        return qtx_fail(e, QTX_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return qtx_fail(e, QTX_ERR_INPUT, "%s: is a directory; pass the files in it", path);
    FILE *f = fopen(path, "rb");
    if (!f) return qtx_fail(e, QTX_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    fclose(f);
    return QTX_OK;
}

int qtx_docsrc_open(const char *const *paths, int n, const qtx_docsrc_options *o, qtx_docsrc **out,
                    qtx_err *e) {
    *out = NULL;
    for (int i = 0; i < n; i++)
        if (check_readable(paths[i], e)) return QTX_ERR_INPUT;
    qtx_docsrc *s = qtx_calloc(1, sizeof *s);
    s->paths = qtx_calloc((size_t)(n ? n : 1), sizeof *s->paths);
    for (int i = 0; i < n; i++) {
        s->paths[i] = strdup(paths[i]);
        QTX_CHECK(s->paths[i], "out of memory");
    }
    s->n_paths = n;
    s->doc_sep = o && o->doc_sep && o->doc_sep[0] ? strdup(o->doc_sep) : NULL;
    s->field = strdup(o && o->field ? o->field : "text");
    QTX_CHECK(s->field, "out of memory");
    s->o.skip_bad = o ? o->skip_bad : 0;
    *out = s;
    return QTX_OK;
}

void qtx_docsrc_close(qtx_docsrc *s) {
    if (!s) return;
    for (int i = 0; i < s->n_paths; i++) free(s->paths[i]);
    free(s->paths);
    free(s->doc_sep);
    free(s->field);
    free(s->buf);
    qtx_bytes_free(&s->arena);
    free(s->offs);
    free(s->docs);
    free(s);
}

int64_t qtx_docsrc_bad_lines(const qtx_docsrc *s) {
    return s->bad_lines;
}
int64_t qtx_docsrc_bytes(const qtx_docsrc *s) {
    return s->bytes;
}

/* Reads the whole (possibly gzipped) file into s->buf. */
static int load_file(qtx_docsrc *s, const char *path, qtx_err *e) {
    gzFile g = gzopen(path, "rb");
    if (!g) return qtx_fail(e, QTX_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(g, 1 << 17);
    size_t cap = 1 << 20, len = 0;
    char *buf = qtx_malloc(cap);
    for (;;) {
        if (cap - len < (1 << 16)) {
            cap *= 2;
            buf = qtx_realloc(buf, cap);
        }
        int got = gzread(g, buf + len, (unsigned)(cap - len > (1u << 30) ? 1u << 30 : cap - len));
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(g, &zerr);
            size_t pn = strlen(path);
            if (!strncmp(msg, path, pn) && !strncmp(msg + pn, ": ", 2)) msg += pn + 2;
            int rc = qtx_fail(e, QTX_ERR_INPUT, "%s: cannot read: %s", path,
                              zerr == Z_ERRNO ? strerror(errno) : msg);
            gzclose(g);
            free(buf);
            return rc;
        }
        if (got == 0) break;
        len += (size_t)got;
    }
    /* gzread stops quietly at a truncated gzip stream; gzclose_r then reports it */
    int zerr;
    const char *msg = gzerror(g, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        size_t pn = strlen(path); /* zlib puts the path in front: keep it once */
        if (!strncmp(msg, path, pn) && !strncmp(msg + pn, ": ", 2)) msg += pn + 2;
        int rc = qtx_fail(e, QTX_ERR_INPUT, "%s: cannot read: %s", path, msg);
        gzclose(g);
        free(buf);
        return rc;
    }
    gzclose(g);
    free(s->buf);
    s->buf = buf;
    s->len = len;
    s->pos = 0;
    s->line = 1;
    s->path = path;
    size_t pn = strlen(path);
    if (has_suffix(path, pn, ".gz")) pn -= 3;
    s->jsonl = has_suffix(path, pn, ".jsonl");
    s->bytes += (int64_t)len;
    return QTX_OK;
}

static void add_doc(qtx_docsrc *s, const char *p, size_t n) {
    if (!n) return;
    if (s->n_docs == s->cap_docs) {
        s->cap_docs = s->cap_docs ? s->cap_docs * 2 : 1024;
        s->offs = qtx_realloc(s->offs, 2 * s->cap_docs * sizeof *s->offs);
        s->docs = qtx_realloc(s->docs, s->cap_docs * sizeof *s->docs);
        QTX_CHECK(s->offs && s->docs, "out of memory");
    }
    s->offs[2 * s->n_docs] = s->arena.n;
    s->offs[2 * s->n_docs + 1] = n;
    s->n_docs++;
    qtx_bytes_append(&s->arena, p, n);
}

/* The next text document of the current file, or 0 when it is exhausted. */
static int next_text(qtx_docsrc *s) {
    if (s->pos >= s->len) return 0;
    const char *p = s->buf + s->pos;
    size_t n = s->len - s->pos;
    if (!s->doc_sep) {
        add_doc(s, p, n);
        s->pos = s->len;
        return 1;
    }
    const size_t k = strlen(s->doc_sep);
    for (size_t i = 0; i < n;) { /* i: start of a line */
        const char *nl = memchr(p + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - p) : n, next = nl ? end + 1 : n;
        size_t ll = end - i;
        if (ll && p[i + ll - 1] == '\r') ll--;
        if (ll == k && !memcmp(p + i, s->doc_sep, k)) {
            add_doc(s, p, i);
            s->pos += next;
            return 1;
        }
        i = next;
    }
    add_doc(s, p, n);
    s->pos = s->len;
    return 1;
}

/* The next JSONL document (or skipped bad line) of the current file. */
static int next_jsonl(qtx_docsrc *s, int *got, qtx_err *e) {
    *got = 0;
    while (s->pos < s->len) {
        const char *p = s->buf + s->pos;
        const char *nl = memchr(p, '\n', s->len - s->pos);
        size_t n = nl ? (size_t)(nl - p) : s->len - s->pos;
        int64_t line = s->line++;
        s->pos += nl ? n + 1 : n;
        size_t a = 0;
        while (a < n && (p[a] == ' ' || p[a] == '\t' || p[a] == '\r')) a++;
        if (a == n) continue; /* blank line */
        const char *end = NULL;
        cJSON *obj = cJSON_ParseWithLengthOpts(p, n, &end, 0);
        int bad = !obj;
        if (obj) {
            size_t t = (size_t)(end - p);
            while (t < n && (p[t] == ' ' || p[t] == '\t' || p[t] == '\r')) t++;
            bad = t < n;
        }
        const cJSON *f = obj && !bad ? cJSON_GetObjectItemCaseSensitive(obj, s->field) : NULL;
        if (bad || !cJSON_IsString(f)) {
            cJSON_Delete(obj);
            if (s->o.skip_bad) {
                s->bad_lines++;
                continue;
            }
            if (bad)
                return qtx_fail(e, QTX_ERR_INPUT,
                                "%s:%lld: not valid JSON; fix the line or pass --skip-bad", s->path,
                                (long long)line);
            return qtx_fail(e, QTX_ERR_INPUT,
                            "%s:%lld: no \"%s\" string field; fix the line or pass --skip-bad",
                            s->path, (long long)line, s->field);
        }
        add_doc(s, f->valuestring, strlen(f->valuestring));
        cJSON_Delete(obj);
        *got = 1;
        return QTX_OK;
    }
    return QTX_OK;
}

int qtx_docsrc_next(qtx_docsrc *s, size_t max_bytes, const qtx_doc **docs, size_t *n, qtx_err *e) {
    s->arena.n = 0;
    s->n_docs = 0;
    *docs = NULL;
    *n = 0;
    while (s->arena.n < max_bytes) {
        if (!s->buf || s->pos >= s->len) {
            free(s->buf);
            s->buf = NULL;
            s->len = s->pos = 0;
            if (s->next_path >= s->n_paths) break;
            if (load_file(s, s->paths[s->next_path++], e)) return QTX_ERR_INPUT;
            continue;
        }
        if (s->jsonl) {
            int got;
            if (next_jsonl(s, &got, e)) return QTX_ERR_INPUT;
        } else {
            next_text(s);
        }
    }
    for (size_t i = 0; i < s->n_docs; i++)
        s->docs[i] = (qtx_doc){s->arena.p + s->offs[2 * i], s->offs[2 * i + 1]};
    *docs = s->docs;
    *n = s->n_docs;
    return QTX_OK;
}
