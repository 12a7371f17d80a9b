/* tokenizer_json.c: reading and writing Hugging Face tokenizer.json for byte-level BPE.
 *
 * Reading accepts exactly what this tokenizer can reproduce bit for bit and refuses the rest
 * with one line that names the file and the field: a normalizer, another pre-tokenizer or
 * add_prefix_space, a template post-processor, lstrip/rstrip/single_word added tokens,
 * dropout, subword prefixes. Writing produces the layout Hugging Face itself writes, with
 * deterministic bytes so that the same training gives the same file hash.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tok_internal.h"

#define MAX_TOKENIZER_FILE (1024L * 1024 * 1024)
#define MAX_ID 2147483647.0

/* A token string for a message: at most 40 bytes, control characters shown as '?', so the
 * message stays on one line. */
static const char *show(const char *s, char buf[48]) {
    size_t i = 0;
    for (; i < 40 && s[i]; i++) buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (!s[i]) {
        buf[i] = 0;
        return buf;
    }
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--; /* keep whole UTF-8 chars */
    memcpy(buf + i, "...", 4);
    return buf;
}

static int is_null_or_absent(const cJSON *v) {
    return !v || cJSON_IsNull(v);
}

/* Integer id in [0, MAX_ID], or -1. */
static int64_t json_id(const cJSON *v) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= MAX_ID) || d != floor(d)) return -1;
    return (int64_t)d;
}

static void line_col(const char *json, size_t pos, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (json[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

/* ---- the parts of a tokenizer while reading -------------------------------------------- */

typedef struct reader {
    const char *name;
    qtx_err *e;
    int64_t vocab_size;
    char **tokens; /* per id, raw bytes (malloc'd) */
    size_t *token_len;
    uint8_t *kind;
    const char **vocab_str; /* per id, the JSON string (owned by the cJSON tree) */
    qtx_bmap str_to_id;     /* vocab strings -> id */
} reader;

static int check_pre_tokenizer(reader *r, const cJSON *pt) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(pt, "type");
    if (!cJSON_IsObject(pt) || !cJSON_IsString(type) || strcmp(type->valuestring, "ByteLevel"))
        return qtx_fail(r->e, QTX_ERR_INPUT,
                        "%s: pre_tokenizer must be {\"type\": \"ByteLevel\", ...}; only GPT-2 "
                        "byte-level BPE is supported",
                        r->name);
    const cJSON *aps = cJSON_GetObjectItemCaseSensitive(pt, "add_prefix_space");
    if (cJSON_IsTrue(aps))
        return qtx_fail(r->e, QTX_ERR_INPUT,
                        "%s: pre_tokenizer.add_prefix_space true is not supported; set it to false",
                        r->name);
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pt, "use_regex");
    if (cJSON_IsFalse(re))
        return qtx_fail(r->e, QTX_ERR_INPUT,
                        "%s: pre_tokenizer.use_regex false is not supported; set it to true",
                        r->name);
    return QTX_OK;
}

static int check_top_level(reader *r, const cJSON *root) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (!is_null_or_absent(n))
        return qtx_fail(r->e, QTX_ERR_INPUT, "%s: a normalizer is not supported; set it to null",
                        r->name);
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (!pt)
        return qtx_fail(r->e, QTX_ERR_INPUT, "%s: no pre_tokenizer; expected ByteLevel", r->name);
    if (check_pre_tokenizer(r, pt)) return QTX_ERR_INPUT;
    const char *bytelevel_only[] = {"decoder", "post_processor"};
    for (int i = 0; i < 2; i++) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, bytelevel_only[i]);
        if (is_null_or_absent(d)) continue;
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(d, "type");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "ByteLevel"))
            return qtx_fail(r->e, QTX_ERR_INPUT,
                            "%s: %s must be null or ByteLevel; other kinds are not supported",
                            r->name, bytelevel_only[i]);
    }
    const char *must_be_null[] = {"truncation", "padding"};
    for (int i = 0; i < 2; i++)
        if (!is_null_or_absent(cJSON_GetObjectItemCaseSensitive(root, must_be_null[i])))
            return qtx_fail(r->e, QTX_ERR_INPUT, "%s: %s is not supported; set it to null", r->name,
                            must_be_null[i]);
    return QTX_OK;
}

static int check_model_options(reader *r, const cJSON *model) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE")))
        return qtx_fail(r->e, QTX_ERR_INPUT, "%s: model.type must be \"BPE\"", r->name);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (!is_null_or_absent(d) && !(cJSON_IsNumber(d) && d->valuedouble == 0))
        return qtx_fail(r->e, QTX_ERR_INPUT, "%s: model.dropout is not supported; set it to null",
                        r->name);
    const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(model, affixes[i]);
        if (!is_null_or_absent(a) && !(cJSON_IsString(a) && !a->valuestring[0]))
            return qtx_fail(r->e, QTX_ERR_INPUT, "%s: model.%s is not supported; set it to null",
                            r->name, affixes[i]);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback")))
        return qtx_fail(r->e, QTX_ERR_INPUT,
                        "%s: model.byte_fallback is not supported (byte-level BPE needs none)",
                        r->name);
    return QTX_OK;
}

/* First pass over vocab and added_tokens: the vocabulary size and the added ids. */
static int scan_ids(reader *r, const cJSON *vocab, const cJSON *added) {
    int64_t max_id = -1;
    char b[48];
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        int64_t id = json_id(it);
        if (id < 0)
            return qtx_fail(r->e, QTX_ERR_INPUT,
                            "%s: model.vocab[\"%s\"]: the id must be an integer in [0, 2^31)",
                            r->name, show(it->string, b));
        if (id > max_id) max_id = id;
    }
    int i = 0;
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsObject(it) || json_id(id) < 0 || !cJSON_IsString(content) ||
            !content->valuestring[0])
            return qtx_fail(r->e, QTX_ERR_INPUT,
                            "%s: added_tokens[%d]: expected {\"id\": integer, \"content\": "
                            "non-empty string, ...}",
                            r->name, i);
        const char *opts[] = {"single_word", "lstrip", "rstrip"};
        for (int k = 0; k < 3; k++)
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, opts[k])))
                return qtx_fail(r->e, QTX_ERR_INPUT,
                                "%s: added_tokens[%d] (\"%s\"): %s true is not supported", r->name,
                                i, show(content->valuestring, b), opts[k]);
        if (json_id(id) > max_id) max_id = json_id(id);
        i++;
    }
    if (max_id < 0) return qtx_fail(r->e, QTX_ERR_INPUT, "%s: model.vocab is empty", r->name);
    r->vocab_size = max_id + 1;
    return QTX_OK;
}

static int read_added(reader *r, const cJSON *added, uint32_t *ids, int *special) {
    const cJSON *it;
    int i = 0;
    char b[48];
    cJSON_ArrayForEach(it, added) {
        int64_t id = json_id(cJSON_GetObjectItemCaseSensitive(it, "id"));
        const char *content = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        if (r->kind[id] == 2)
            return qtx_fail(r->e, QTX_ERR_INPUT,
                            "%s: added_tokens[%d] (\"%s\"): id %lld is used twice", r->name, i,
                            show(content, b), (long long)id);
        size_t n = strlen(content);
        r->tokens[id] = qtx_malloc(n);
        memcpy(r->tokens[id], content, n);
        r->token_len[id] = n;
        r->kind[id] = 2;
        ids[i] = (uint32_t)id;
        special[i] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special"));
        i++;
    }
    return QTX_OK;
}

static int read_vocab(reader *r, const cJSON *vocab) {
    const cJSON *it;
    char b[48], b2[48];
    cJSON_ArrayForEach(it, vocab) {
        int64_t id = json_id(it);
        const char *s = it->string;
        size_t n = strlen(s);
        if (r->vocab_str[id])
            return qtx_fail(r->e, QTX_ERR_INPUT,
                            "%s: model.vocab: id %lld is given to both \"%s\" and \"%s\"", r->name,
                            (long long)id, show(r->vocab_str[id], b), show(s, b2));
        r->vocab_str[id] = s;
        int ins;
        uint64_t *v = qtx_bmap_put(&r->str_to_id, s, n, qtx_bmap_hash(s, n), &ins);
        if (!ins)
            return qtx_fail(r->e, QTX_ERR_INPUT, "%s: model.vocab: \"%s\" appears twice", r->name,
                            show(s, b));
        *v = (uint64_t)id;
        if (r->kind[id] == 2) continue; /* an added token: decodes to its content */
        uint8_t *bytes = qtx_malloc(n ? n : 1);
        long nb = qtx_bytelevel_decode(s, n, bytes);
        if (nb <= 0) {
            free(bytes);
            return qtx_fail(r->e, QTX_ERR_INPUT,
                            "%s: model.vocab[\"%s\"]: not a byte-level token (it has characters "
                            "outside GPT-2's byte alphabet)",
                            r->name, show(s, b));
        }
        r->tokens[id] = (char *)bytes;
        r->token_len[id] = (size_t)nb;
        r->kind[id] = 1;
    }
    return QTX_OK;
}

static int64_t lookup(reader *r, const char *s, size_t n) {
    uint64_t *v = qtx_bmap_find(&r->str_to_id, s, n, qtx_bmap_hash(s, n));
    return v ? (int64_t)*v : -1;
}

static int read_merges(reader *r, const cJSON *merges, uint32_t *pairs) {
    const cJSON *it;
    int i = 0;
    char b[48];
    size_t cat_cap = 256; /* grows with the longest pair */
    char *cat = qtx_malloc(cat_cap);
    int rc = QTX_OK;
    cJSON_ArrayForEach(it, merges) {
        const char *left = NULL, *right = NULL;
        size_t ln = 0, rn = 0;
        if (cJSON_IsString(it)) { /* "left right", exactly one space (Hugging Face's rule) */
            const char *sp = strchr(it->valuestring, ' ');
            if (sp && !strchr(sp + 1, ' ')) {
                left = it->valuestring;
                ln = (size_t)(sp - left);
                right = sp + 1;
                rn = strlen(right);
            }
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            left = cJSON_GetArrayItem(it, 0)->valuestring;
            right = cJSON_GetArrayItem(it, 1)->valuestring;
            ln = strlen(left);
            rn = strlen(right);
        }
        if (!left || !ln || !rn) {
            rc = qtx_fail(r->e, QTX_ERR_INPUT,
                          "%s: model.merges[%d]: expected \"left right\" or [\"left\", \"right\"]",
                          r->name, i);
            break;
        }
        int64_t a = lookup(r, left, ln), c = lookup(r, right, rn);
        if (ln + rn + 1 > cat_cap) {
            cat_cap = 2 * (ln + rn + 1);
            cat = qtx_realloc(cat, cat_cap);
        }
        memcpy(cat, left, ln);
        memcpy(cat + ln, right, rn);
        cat[ln + rn] = 0;
        if (a < 0 || c < 0) {
            memcpy(cat, a < 0 ? left : right, a < 0 ? ln : rn);
            cat[a < 0 ? ln : rn] = 0;
            rc = qtx_fail(r->e, QTX_ERR_INPUT, "%s: model.merges[%d]: \"%s\" is not in model.vocab",
                          r->name, i, show(cat, b));
            break;
        }
        if (lookup(r, cat, ln + rn) < 0) {
            rc = qtx_fail(r->e, QTX_ERR_INPUT,
                          "%s: model.merges[%d]: the merged token \"%s\" is not in model.vocab",
                          r->name, i, show(cat, b));
            break;
        }
        pairs[2 * i] = (uint32_t)a;
        pairs[2 * i + 1] = (uint32_t)c;
        i++;
    }
    free(cat);
    return rc;
}

int qtx_tokenizer_parse(const char *json, size_t len, const char *name, qtx_tokenizer **out,
                        qtx_err *e) {
    *out = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t pos = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        int line, col;
        line_col(json, pos, &line, &col);
        return qtx_fail(e, QTX_ERR_INPUT, "%s: invalid JSON near line %d, column %d", name, line,
                        col);
    }
    size_t tail = (size_t)(end - json);
    while (tail < len && (json[tail] == ' ' || json[tail] == '\n' || json[tail] == '\r' ||
                          json[tail] == '\t' || json[tail] == 0))
        tail++;
    if (tail < len) {
        int line, col;
        line_col(json, tail, &line, &col);
        cJSON_Delete(root);
        return qtx_fail(e, QTX_ERR_INPUT,
                        "%s: invalid JSON near line %d, column %d (text after the end)", name, line,
                        col);
    }
    reader r = {.name = name, .e = e};
    int rc = QTX_OK;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(root))
        rc = qtx_fail(e, QTX_ERR_INPUT, "%s: not a tokenizer.json (the top level is not an object)",
                      name);
    else if (!cJSON_IsObject(model))
        rc = qtx_fail(e, QTX_ERR_INPUT, "%s: no \"model\" object", name);
    else if (!cJSON_IsObject(vocab))
        rc = qtx_fail(e, QTX_ERR_INPUT, "%s: model.vocab is missing or not an object", name);
    else if (!cJSON_IsArray(merges))
        rc = qtx_fail(e, QTX_ERR_INPUT, "%s: model.merges is missing or not an array", name);
    else if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added))
        rc = qtx_fail(e, QTX_ERR_INPUT, "%s: added_tokens is not an array", name);
    if (!rc) rc = check_top_level(&r, root);
    if (!rc) rc = check_model_options(&r, model);
    if (!rc) rc = scan_ids(&r, vocab, cJSON_IsArray(added) ? added : NULL);
    if (rc) {
        cJSON_Delete(root);
        return rc;
    }

    const int64_t V = r.vocab_size;
    const int n_added = cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0;
    const int64_t n_merges = cJSON_GetArraySize(merges);
    r.tokens = qtx_calloc((size_t)V, sizeof *r.tokens);
    r.token_len = qtx_calloc((size_t)V, sizeof *r.token_len);
    r.kind = qtx_calloc((size_t)V, 1);
    r.vocab_str = qtx_calloc((size_t)V, sizeof *r.vocab_str);
    qtx_bmap_init(&r.str_to_id, (size_t)cJSON_GetArraySize(vocab));
    uint32_t *added_ids = qtx_malloc((size_t)(n_added ? n_added : 1) * sizeof *added_ids);
    int *added_special = qtx_malloc((size_t)(n_added ? n_added : 1) * sizeof *added_special);
    uint32_t *pairs = qtx_malloc((size_t)(n_merges ? n_merges : 1) * 2 * sizeof *pairs);

    rc = read_added(&r, added, added_ids, added_special);
    if (!rc) rc = read_vocab(&r, vocab);
    if (!rc) rc = read_merges(&r, merges, pairs);
    if (!rc) {
        const cJSON *im = cJSON_GetObjectItemCaseSensitive(model, "ignore_merges");
        qtx_tok_parts p = {.vocab_size = V,
                           .tokens = (const char *const *)r.tokens,
                           .token_len = r.token_len,
                           .kind = r.kind,
                           .merge_pairs = pairs,
                           .n_merges = n_merges,
                           .added_ids = added_ids,
                           .added_special = added_special,
                           .n_added = n_added,
                           .ignore_merges = cJSON_IsTrue(im)};
        rc = qtx_tokenizer_build(&p, name, out, e);
    }
    for (int64_t id = 0; id < V; id++) free(r.tokens[id]);
    free(r.tokens);
    free(r.token_len);
    free(r.kind);
    free(r.vocab_str);
    qtx_bmap_free(&r.str_to_id);
    free(added_ids);
    free(added_special);
    free(pairs);
    cJSON_Delete(root);
    if (!rc) {
        qtx_sha256 s;
        qtx_sha256_init(&s);
        qtx_sha256_update(&s, json, len);
        qtx_sha256_hex(&s, (*out)->hash);
    }
    return rc;
}

int qtx_tokenizer_load(const char *path, qtx_tokenizer **out, qtx_err *e) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return qtx_fail(e, QTX_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) || st.st_size > MAX_TOKENIZER_FILE) {
        fclose(f);
        return qtx_fail(e, QTX_ERR_INPUT, "%s: not a regular file of at most 1 GiB", path);
    }
    size_t n = (size_t)st.st_size;
    char *buf = qtx_malloc(n + 1);
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (got != n) {
        free(buf);
        return qtx_fail(e, QTX_ERR_INPUT, "%s: read error", path);
    }
    buf[n] = 0;
    int rc = qtx_tokenizer_parse(buf, n, path, out, e);
    free(buf);
    return rc;
}

/* ---- writing --------------------------------------------------------------------------- */

static void put(qtx_bytes *b, const char *s) {
    qtx_bytes_append(b, s, strlen(s));
}

/* A JSON string of UTF-8 text: quotes, backslashes and control characters escaped. */
static void put_json_string(qtx_bytes *b, const char *s, size_t n) {
    qtx_bytes_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            qtx_bytes_append(b, esc, 2);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            qtx_bytes_append(b, esc, 6);
        } else {
            qtx_bytes_append(b, &s[i], 1);
        }
    }
    qtx_bytes_append(b, "\"", 1);
}

/* The string tokenizer.json shows for a model token: its bytes through GPT-2's mapping. */
static void put_token(qtx_bytes *b, const qtx_tokenizer *t, uint32_t id) {
    const char *s = t->tok_bytes + t->tok_off[id];
    size_t n = t->tok_off[id + 1] - t->tok_off[id];
    if (t->tok_kind[id] == 2) {
        put_json_string(b, s, n);
        return;
    }
    qtx_bytes_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        char u[2];
        int k = qtx_byte_to_utf8((uint8_t)s[i], u);
        if (u[0] == '"' || u[0] == '\\') qtx_bytes_append(b, "\\", 1);
        qtx_bytes_append(b, u, (size_t)k);
    }
    qtx_bytes_append(b, "\"", 1);
}

static void put_merge(qtx_bytes *b, const qtx_tokenizer *t, uint32_t left, uint32_t right) {
    qtx_bytes tmp = {0};
    put_token(&tmp, t, left);
    tmp.n--; /* drop the closing quote */
    qtx_bytes_append(&tmp, " ", 1);
    size_t mark = tmp.n;
    put_token(&tmp, t, right);
    memmove(tmp.p + mark, tmp.p + mark + 1, tmp.n - mark - 1); /* drop the opening quote */
    tmp.n--;
    qtx_bytes_append(b, tmp.p, tmp.n);
    qtx_bytes_free(&tmp);
}

static int find_added(const qtx_tokenizer *t, uint32_t id, int *special) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) {
            *special = t->added[i].special;
            return 1;
        }
    return 0;
}

int qtx_tokenizer_save(qtx_tokenizer *t, const char *path, qtx_err *e) {
    qtx_bytes b = {0};
    char num[64];
    put(&b, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
            "  \"added_tokens\": [");
    int first = 1;
    for (int64_t id = 0; id < t->vocab_size; id++) { /* in id order, as Hugging Face does */
        int special;
        if (t->tok_kind[id] != 2 || !find_added(t, (uint32_t)id, &special)) continue;
        snprintf(num, sizeof num,
                 "%s\n    {\n      \"id\": %lld,\n      \"content\": ", first ? "" : ",",
                 (long long)id);
        put(&b, num);
        put_token(&b, t, (uint32_t)id);
        put(&b, ",\n      \"single_word\": false,\n      \"lstrip\": false,\n      \"rstrip\": "
                "false,\n      \"normalized\": false,\n      \"special\": ");
        put(&b, special ? "true\n    }" : "false\n    }");
        first = 0;
    }
    put(&b, first ? "],\n" : "\n  ],\n");
    put(&b, "  \"normalizer\": null,\n"
            "  \"pre_tokenizer\": {\n    \"type\": \"ByteLevel\",\n    \"add_prefix_space\": "
            "false,\n    \"trim_offsets\": true,\n    \"use_regex\": true\n  },\n"
            "  \"post_processor\": null,\n"
            "  \"decoder\": {\n    \"type\": \"ByteLevel\",\n    \"add_prefix_space\": true,\n"
            "    \"trim_offsets\": true,\n    \"use_regex\": true\n  },\n"
            "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": "
            "null,\n    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
            "    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": ");
    put(&b, t->ignore_merges ? "true" : "false");
    put(&b, ",\n    \"vocab\": {");
    first = 1;
    for (int64_t id = 0; id < t->vocab_size; id++) {
        if (!t->tok_kind[id]) continue;
        put(&b, first ? "\n      " : ",\n      ");
        put_token(&b, t, (uint32_t)id);
        snprintf(num, sizeof num, ": %lld", (long long)id);
        put(&b, num);
        first = 0;
    }
    put(&b, first ? "},\n    \"merges\": [" : "\n    },\n    \"merges\": [");
    /* "left right": the classic form, which every version of tokenizers and llama.cpp's
     * converters read; byte-level tokens never contain a space. */
    for (int64_t r = 0; r < t->n_merges; r++) {
        put(&b, r ? ",\n      " : "\n      ");
        put_merge(&b, t, t->merge_pairs[2 * r], t->merge_pairs[2 * r + 1]);
    }
    put(&b, t->n_merges ? "\n    ]\n  }\n}" : "]\n  }\n}");

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int rc = qtx_fail(e, QTX_ERR_INPUT, "%s: cannot create: %s", path, strerror(errno));
        qtx_bytes_free(&b);
        return rc;
    }
    int ok = fwrite(b.p, 1, b.n, f) == b.n;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path)) {
        int rc = qtx_fail(e, QTX_ERR_INPUT, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        qtx_bytes_free(&b);
        return rc;
    }
    qtx_sha256 s;
    qtx_sha256_init(&s);
    qtx_sha256_update(&s, b.p, b.n);
    qtx_sha256_hex(&s, t->hash);
    qtx_bytes_free(&b);
    return QTX_OK;
}
