/* fuzz_topk.c — libFuzzer target for rl_topk_decode: another replica's top
 * lists as read from Redis (outside input: anyone who can write to Redis).
 *
 * Checks: the input is read only within `size` (a copy without NUL); what
 * decodes keeps every invariant (n <= RL_TOPK_CAP, err <= count, NUL-
 * terminated identities) and survives encode + decode unchanged; merging it
 * into a summary keeps the total and the invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate/rl_topk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const rl_topk_sum_t *s)
{
    if (s->n > RL_TOPK_CAP)
        abort();
    for (uint32_t i = 0; i < s->n; i++)
        if (s->e[i].err > s->e[i].count || memchr(s->e[i].id, '\0', RL_TOPK_ID_LEN) == NULL)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rl_topk_lview_t a, b;
    static rl_topk_sum_t acc;
    static char wire[RL_TOPK_WIRE_MAX * 2];
    char *copy = malloc(size ? size : 1), err[64];
    int len;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    if (rl_topk_decode(copy, size, &a, err, sizeof err) == 0) {
        len = rl_topk_encode(&a, wire, sizeof wire);
        if (len < 0 || rl_topk_decode(wire, (size_t)len, &b, err, sizeof err) != 0)
            abort();
        for (int w = 0; w < RL_TOPK_NWIN; w++)
            for (int k = 0; k < RL_TOPK_NKIND; k++) {
                uint64_t before;

                check(&a.w[w][k]);
                if (a.w[w][k].n != b.w[w][k].n || a.w[w][k].total != b.w[w][k].total)
                    abort();
                for (uint32_t i = 0; i < a.w[w][k].n; i++)
                    if (a.w[w][k].e[i].count != b.w[w][k].e[i].count ||
                        a.w[w][k].e[i].err != b.w[w][k].e[i].err ||
                        strcmp(a.w[w][k].e[i].id, b.w[w][k].e[i].id) != 0)
                        abort();
                rl_topk_sum_init(&acc);
                rl_topk_sum_add(&acc, "c=fuzz", 3);
                before = acc.total;
                rl_topk_sum_merge(&acc, &a.w[w][k]);
                check(&acc);
                if (acc.total != before + a.w[w][k].total)
                    abort();
            }
    }
    free(copy);
    return 0;
}
