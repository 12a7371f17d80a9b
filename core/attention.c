/* attention.c: causal grouped-query attention, flash-style.
 *
 * Queries go in blocks of QBLK rows. A block's scores against keys [0, end of block) are
 * formed, softmaxed and multiplied by V at once; only the log-sum-exp of each row is kept,
 * and backward recomputes the block's probabilities from it, so no B x H x T x T tensor ever
 * exists. Work is split over (batch, head, query block) forward and over (batch, kv head)
 * backward, where dK and dV of a kv head gather contributions from all its query heads.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels.h"
#include "vmath.h"

#define QBLK 64

int64_t qtx_attention_scratch_floats(int T, int n_threads) {
    return (int64_t)n_threads * (2 * (int64_t)QBLK * T + QBLK);
}

/* Row softmax of S[nq, len] in place under the causal mask (query i0+i sees keys <= i0+i);
 * writes lse when not NULL. */
static void causal_softmax(float *S, int nq, int len, int i0, float *lse) {
    for (int i = 0; i < nq; i++) {
        float *s = S + (int64_t)i * len;
        const int valid = i0 + i + 1;
        float m = -INFINITY;
#pragma omp simd reduction(max : m)
        for (int j = 0; j < valid; j++) m = s[j] > m ? s[j] : m;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < valid; j++) {
            s[j] = qtx_expf(s[j] - m);
            sum += s[j];
        }
        const float inv = 1.0f / sum;
#pragma omp simd
        for (int j = 0; j < valid; j++) s[j] *= inv;
        for (int j = valid; j < len; j++) s[j] = 0.0f;
        if (lse) lse[i] = m + logf(sum);
    }
}

void qtx_attention_fwd(float *out, float *lse, const float *qkv, int B, int T, int H, int KV,
                       int hd, float *scratch, int n_threads) {
    const int64_t ld = (int64_t)(H + 2 * KV) * hd, ldo = (int64_t)H * hd;
    const int nqb = (T + QBLK - 1) / QBLK, group = H / KV;
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t n_tasks = (int64_t)B * H * nqb;
#pragma omp parallel num_threads(n_threads)
    {
        float *S = scratch + (int64_t)omp_get_thread_num() * (2 * (int64_t)QBLK * T + QBLK);
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < n_tasks; task++) {
            /* Largest blocks first: the last query block of each head has the most keys. */
            const int qb = nqb - 1 - (int)(task % nqb);
            const int h = (int)((task / nqb) % H), b = (int)(task / ((int64_t)nqb * H));
            const int i0 = qb * QBLK, nq = (T - i0) < QBLK ? (T - i0) : QBLK, len = i0 + nq;
            const int kvh = h / group;
            const float *base = qkv + (int64_t)b * T * ld;
            const float *q = base + (int64_t)i0 * ld + (int64_t)h * hd;
            const float *k = base + (int64_t)H * hd + (int64_t)kvh * hd;
            const float *v = base + (int64_t)(H + KV) * hd + (int64_t)kvh * hd;
            qtx_sgemm(0, 1, nq, len, hd, scale, q, ld, k, ld, 0.0f, S, len);
            causal_softmax(S, nq, len, i0, lse + ((int64_t)b * H + h) * T + i0);
            float *o = out + ((int64_t)b * T + i0) * ldo + (int64_t)h * hd;
            qtx_sgemm(0, 0, nq, hd, len, 1.0f, S, len, v, ld, 0.0f, o, ldo);
        }
    }
}

void qtx_attention_bwd(float *dqkv, const float *dout, const float *qkv, const float *out,
                       const float *lse, int B, int T, int H, int KV, int hd, float *scratch,
                       int n_threads) {
    const int64_t ld = (int64_t)(H + 2 * KV) * hd, ldo = (int64_t)H * hd;
    const int nqb = (T + QBLK - 1) / QBLK, group = H / KV;
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t n_tasks = (int64_t)B * KV;
#pragma omp parallel num_threads(n_threads)
    {
        float *P = scratch + (int64_t)omp_get_thread_num() * (2 * (int64_t)QBLK * T + QBLK);
        float *dP = P + (int64_t)QBLK * T, *D = dP + (int64_t)QBLK * T;
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < n_tasks; task++) {
            const int kvh = (int)(task % KV), b = (int)(task / KV);
            const float *base = qkv + (int64_t)b * T * ld;
            float *dbase = dqkv + (int64_t)b * T * ld;
            const float *k = base + (int64_t)H * hd + (int64_t)kvh * hd;
            const float *v = base + (int64_t)(H + KV) * hd + (int64_t)kvh * hd;
            float *dk = dbase + (int64_t)H * hd + (int64_t)kvh * hd;
            float *dv = dbase + (int64_t)(H + KV) * hd + (int64_t)kvh * hd;
            for (int t = 0; t < T; t++) {
                memset(dk + t * ld, 0, (size_t)hd * sizeof(float));
                memset(dv + t * ld, 0, (size_t)hd * sizeof(float));
            }
            for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                for (int qb = 0; qb < nqb; qb++) {
                    const int i0 = qb * QBLK, nq = (T - i0) < QBLK ? (T - i0) : QBLK;
                    const int len = i0 + nq;
                    const float *q = base + (int64_t)i0 * ld + (int64_t)h * hd;
                    float *dq = dbase + (int64_t)i0 * ld + (int64_t)h * hd;
                    const int64_t orow = ((int64_t)b * T + i0) * ldo + (int64_t)h * hd;
                    const float *o = out + orow, *dO = dout + orow;
                    const float *l = lse + ((int64_t)b * H + h) * T + i0;
                    /* P from the saved log-sum-exp. */
                    qtx_sgemm(0, 1, nq, len, hd, scale, q, ld, k, ld, 0.0f, P, len);
                    for (int i = 0; i < nq; i++) {
                        float *p = P + (int64_t)i * len;
                        const int valid = i0 + i + 1;
                        const float li = l[i];
#pragma omp simd
                        for (int j = 0; j < valid; j++) p[j] = qtx_expf(p[j] - li);
                        for (int j = valid; j < len; j++) p[j] = 0.0f;
                        float d = 0.0f;
                        for (int e = 0; e < hd; e++)
                            d += dO[(int64_t)i * ldo + e] * o[(int64_t)i * ldo + e];
                        D[i] = d;
                    }
                    /* dP = dO V^T; dS = P (dP - D). */
                    qtx_sgemm(0, 1, nq, len, hd, 1.0f, dO, ldo, v, ld, 0.0f, dP, len);
                    for (int i = 0; i < nq; i++) {
                        float *dp = dP + (int64_t)i * len;
                        const float *p = P + (int64_t)i * len;
                        const float di = D[i];
#pragma omp simd
                        for (int j = 0; j < len; j++) dp[j] = p[j] * (dp[j] - di);
                    }
                    qtx_sgemm(0, 0, nq, hd, len, scale, dP, len, k, ld, 0.0f, dq, ld);
                    qtx_sgemm(1, 0, len, hd, nq, scale, dP, len, q, ld, 1.0f, dk, ld);
                    qtx_sgemm(1, 0, len, hd, nq, 1.0f, P, len, dO, ldo, 1.0f, dv, ld);
                }
            }
        }
    }
}
