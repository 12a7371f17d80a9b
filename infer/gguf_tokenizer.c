/* gguf_tokenizer.c: tokenizer.ggml.* -> a Hugging Face tokenizer.json document -> the
 * tokenizer of data/ (one parser, one set of checks, whatever the source). */
#include "gguf_tokenizer.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static cJSON *str_n(const char *s, size_t n) {
    char *z = qtx_malloc(n + 1);
    memcpy(z, s, n);
    z[n] = '\0';
    cJSON *j = cJSON_CreateString(z);
    free(z);
    return j;
}

int qtx_gguf_tokenizer(const qtx_gguf *g, const char *path, qtx_tokenizer **out, qtx_err *e) {
    *out = NULL;
    const char *model;
    size_t model_len;
    int rc = qtx_gguf_get_str(g, "tokenizer.ggml.model", &model, &model_len, e);
    if (rc) return rc;
    if (model_len != 4 || memcmp(model, "gpt2", 4))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "%s: tokenizer.ggml.model is '%.*s'; qtx reads byte-level BPE ('gpt2') "
                        "tokenizers only",
                        path, (int)(model_len < 64 ? model_len : 64), model);
    int et;
    uint64_t n_tok, n_merge;
    if ((rc = qtx_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n_tok, e))) return rc;
    if ((rc = qtx_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n_merge, e))) return rc;
    const int32_t *types = NULL;
    uint64_t n_types = 0;
    /* token types are int32 (GGUF type 5); any other element type is ignored, not misread */
    if (qtx_gguf_has(g, "tokenizer.ggml.token_type") &&
        qtx_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n_types, NULL) == QTX_OK &&
        et == 5 && n_types == n_tok)
        types = qtx_gguf_arr_data(g, "tokenizer.ggml.token_type");
    cJSON *root = cJSON_CreateObject(), *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON *pt = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pt, "type", "ByteLevel");
    cJSON_AddFalseToObject(pt, "add_prefix_space");
    cJSON_AddTrueToObject(pt, "trim_offsets");
    cJSON_AddTrueToObject(pt, "use_regex");
    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON *mj = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(mj, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(mj, "vocab"),
          *merges = cJSON_AddArrayToObject(mj, "merges");
    for (uint64_t i = 0; i < n_tok && !rc; i++) {
        const char *s;
        size_t len;
        if (qtx_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &s, &len)) {
            rc = qtx_fail(e, QTX_ERR_INPUT, "%s: tokenizer.ggml.tokens[%llu] is not a string", path,
                          (unsigned long long)i);
            break;
        }
        if (types && types[i] == 3) { /* control token: an added, special token */
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddItemToObject(a, "content", str_n(s, len));
            cJSON_AddTrueToObject(a, "special");
            cJSON_AddItemToArray(added, a);
        } else {
            char *z = qtx_malloc(len + 1);
            memcpy(z, s, len);
            z[len] = '\0';
            cJSON_AddNumberToObject(vocab, z, (double)i);
            free(z);
        }
    }
    for (uint64_t i = 0; i < n_merge && !rc; i++) {
        const char *s;
        size_t len;
        if (qtx_gguf_arr_str(g, "tokenizer.ggml.merges", i, &s, &len)) {
            rc = qtx_fail(e, QTX_ERR_INPUT, "%s: tokenizer.ggml.merges[%llu] is not a string", path,
                          (unsigned long long)i);
            break;
        }
        cJSON_AddItemToArray(merges, str_n(s, len));
    }
    if (!rc) {
        char *text = cJSON_PrintUnformatted(root);
        QTX_CHECK(text, "out of memory");
        rc = qtx_tokenizer_parse(text, strlen(text), path, out, e);
        free(text);
    }
    cJSON_Delete(root);
    return rc;
}
