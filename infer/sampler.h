/* sampler.h: choosing the next token from logits: greedy (temperature 0), or temperature
 * with top-k and top-p (nucleus) filtering, drawn from a counter-based RNG so a seed
 * reproduces a generation exactly. */
#ifndef QTX_SAMPLER_H
#define QTX_SAMPLER_H

#include <stdint.h>

typedef struct qtx_sampler {
    float temp;  /* 0: greedy */
    int top_k;   /* 0: no limit */
    float top_p; /* 1: no limit */
    uint64_t seed;
    uint64_t n; /* draws so far: the RNG counter */
    int64_t vocab;
    int32_t *idx; /* [vocab] scratch */
    float *prob;  /* [vocab] scratch */
} qtx_sampler;

void qtx_sampler_init(qtx_sampler *s, int64_t vocab, float temp, int top_k, float top_p,
                      uint64_t seed);
void qtx_sampler_free(qtx_sampler *s);
/* The next token; logits [vocab] are left untouched. */
int32_t qtx_sample(qtx_sampler *s, const float *logits);

#endif
