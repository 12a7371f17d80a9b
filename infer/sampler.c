/* sampler.c: greedy, temperature, top-k and top-p sampling. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "rng.h"

void qtx_sampler_init(qtx_sampler *s, int64_t vocab, float temp, int top_k, float top_p,
                      uint64_t seed) {
    s->temp = temp;
    s->top_k = top_k;
    s->top_p = top_p;
    s->seed = seed;
    s->n = 0;
    s->vocab = vocab;
    s->idx = qtx_malloc((size_t)vocab * sizeof *s->idx);
    s->prob = qtx_malloc((size_t)vocab * sizeof *s->prob);
}

void qtx_sampler_free(qtx_sampler *s) {
    free(s->idx);
    free(s->prob);
    s->idx = NULL;
    s->prob = NULL;
}

static int by_prob_desc(const void *a, const void *b, void *probs) {
    const float *p = probs;
    const float pa = p[*(const int32_t *)a], pb = p[*(const int32_t *)b];
    if (pa != pb) return pa > pb ? -1 : 1;
    return *(const int32_t *)a - *(const int32_t *)b; /* ties: lower id first, deterministic */
}

int32_t qtx_sample(qtx_sampler *s, const float *logits) {
    const int64_t V = s->vocab;
    /* The first index of the largest logit; the maximum first, as a vector reduction. */
    float top = -INFINITY; /* NaNs never compare greater: skipped */
#pragma omp simd reduction(max : top)
    for (int64_t i = 0; i < V; i++) top = logits[i] > top ? logits[i] : top;
    int32_t best = 0;
    while (best < V && !(logits[best] == top)) best++;
    if (best == V) best = 0; /* every logit NaN */
    if (s->temp <= 0.0f) return best;
    /* softmax(logits / temp) */
    double sum = 0.0;
    for (int64_t i = 0; i < V; i++) {
        s->prob[i] = expf((logits[i] - logits[best]) / s->temp);
        sum += s->prob[i];
        s->idx[i] = (int32_t)i;
    }
    for (int64_t i = 0; i < V; i++) s->prob[i] = (float)(s->prob[i] / sum);
    int64_t n = V;
    if (s->top_k > 0 || s->top_p < 1.0f) {
        qsort_r(s->idx, (size_t)V, sizeof *s->idx, by_prob_desc, s->prob);
        if (s->top_k > 0 && s->top_k < n) n = s->top_k;
        if (s->top_p < 1.0f) {
            double cum = 0.0;
            for (int64_t i = 0; i < n; i++) {
                cum += s->prob[s->idx[i]];
                if (cum >= s->top_p) {
                    n = i + 1;
                    break;
                }
            }
        }
    }
    double mass = 0.0;
    for (int64_t i = 0; i < n; i++) mass += s->prob[s->idx[i]];
    const double r = qtx_rng_uniform(s->seed, 0x73616d706c65ULL, s->n++) * mass;
    double cum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        cum += s->prob[s->idx[i]];
        if (r < cum) return s->idx[i];
    }
    return s->idx[n - 1];
}
