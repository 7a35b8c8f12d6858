/* Exact top-K selection: a bounded min-heap kept in the caller's output array.
 *
 * The heap's root is the worst of the best-k-so-far. Scores are scanned in index order (across
 * pieces too, for eng_topk_push), so a later score that merely ties the root has a higher index
 * and loses the tie: only a strictly greater score can enter a full heap. That makes the common
 * case on a long row (a score below the root) one comparison, and the scan checks a whole chunk
 * against the root before looking at single entries. */
#include "engine/topk.h"

#include <math.h>

/* Entries checked against the root at once: long enough for the compiler to vectorise the test,
 * short enough that a chunk holding a candidate costs little to rescan one by one. */
#define CHUNK 16

/* Non-zero when a ranks below b: lower score, or the same score and a higher index. */
static inline int worse(eng_scored_t a, eng_scored_t b)
{
    return a.score < b.score || (a.score == b.score && a.idx > b.idx);
}

/* Restores the heap property (root = worst) below position i of h[0..n). */
static void sift_down(eng_scored_t *h, size_t n, size_t i)
{
    eng_scored_t x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && worse(h[c + 1], h[c]))
            c++;
        if (!worse(h[c], x))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static void sift_up(eng_scored_t *h, size_t i)
{
    eng_scored_t x = h[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!worse(x, h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

/* Non-zero when any of s[0..CHUNK) is strictly greater than thr (NaN never is). Written as a
 * branch-free reduction so that it compiles to a few vector compares. */
static inline int chunk_has_greater(const float *s, float thr)
{
    int any = 0;
    for (int j = 0; j < CHUNK; j++)
        any |= s[j] > thr;
    return any;
}

size_t eng_topk_push(const float *scores, int32_t n, int32_t base, size_t k, eng_scored_t *heap,
                     size_t len)
{
    if (k == 0 || n <= 0)
        return len;
    int32_t i = 0;

    /* Fill: until the heap holds k entries. `!(s > -INFINITY)` is true for -INFINITY and NaN. */
    for (; i < n && len < k; i++) {
        float s = scores[i];
        if (!(s > -INFINITY))
            continue;
        heap[len] = (eng_scored_t){base + i, s};
        sift_up(heap, len++);
    }

    /* Scan: the heap is full (or the row is exhausted); only scores above the root matter. */
    if (len == k) {
        float thr = heap[0].score;
        while (i < n) {
            if (i + CHUNK <= n && !chunk_has_greater(scores + i, thr)) {
                i += CHUNK;
                continue;
            }
            int32_t end = i + CHUNK <= n ? i + CHUNK : n;
            for (; i < end; i++) {
                float s = scores[i];
                if (!(s > thr))
                    continue;
                heap[0] = (eng_scored_t){base + i, s};
                sift_down(heap, k, 0);
                thr = heap[0].score;
            }
        }
    }
    return len;
}

void eng_topk_finish(eng_scored_t *heap, size_t len)
{
    /* Heapsort in place: moving the root (worst) to the end each time leaves it best-first. */
    for (size_t m = len; m > 1; m--) {
        eng_scored_t t = heap[0];
        heap[0] = heap[m - 1];
        heap[m - 1] = t;
        sift_down(heap, m - 1, 0);
    }
}

size_t eng_topk(const float *scores, int32_t n, size_t k, eng_scored_t *out)
{
    size_t len = eng_topk_push(scores, n, 0, k, out, 0);
    eng_topk_finish(out, len);
    return len;
}
