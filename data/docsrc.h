/* docsrc.h: documents from text inputs, for the tokenizer trainer and qtx prep.
 *
 * Inputs by name: *.jsonl holds one JSON object per line whose "text" field (or another
 * string field) is a document; anything else is plain text, one document per file, or several
 * when a separator line is given (a line equal to it, '\r' before the '\n' ignored, ends a
 * document and is dropped). A trailing ".gz" means gzip (read through zlib). Empty documents
 * are skipped. Text is taken as bytes: invalid UTF-8 is not an error.
 */
#ifndef QTX_DOCSRC_H
#define QTX_DOCSRC_H

#include <stddef.h>
#include <stdint.h>

#include "check.h"

typedef struct qtx_docsrc_options {
    const char *doc_sep; /* NULL or "": one document per text file */
    const char *field;   /* JSONL field; NULL means "text" */
    int skip_bad;        /* skip (and count) malformed JSONL lines instead of failing */
} qtx_docsrc_options;

typedef struct qtx_doc {
    const char *p;
    size_t n;
} qtx_doc;

typedef struct qtx_docsrc qtx_docsrc;

/* Checks up front that every input is a readable regular file (QTX_ERR_INPUT naming the
 * first that is not), so nothing is produced from a command line that cannot succeed. */
int qtx_docsrc_open(const char *const *paths, int n, const qtx_docsrc_options *o, qtx_docsrc **out,
                    qtx_err *e);

/* The next documents, in input order, about max_bytes of them (at least one document when
 * any is left): *docs and *n stay valid until the next call; *n == 0 at the end. Malformed
 * JSONL is QTX_ERR_INPUT naming file:line (unless skip_bad); so is an unreadable or corrupt
 * file. */
int qtx_docsrc_next(qtx_docsrc *s, size_t max_bytes, const qtx_doc **docs, size_t *n, qtx_err *e);

/* Malformed JSONL lines skipped so far, and uncompressed input bytes read so far. */
int64_t qtx_docsrc_bad_lines(const qtx_docsrc *s);
int64_t qtx_docsrc_bytes(const qtx_docsrc *s);
void qtx_docsrc_close(qtx_docsrc *s);

#endif
