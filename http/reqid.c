/* reqid.c — request ids (X-Request-ID): validation, and UUIDv4 from a
 * per-thread xoshiro256** generator seeded with getrandom(2).  Ids are not
 * secrets, only unique: 122 random bits from a 256-bit state seeded
 * independently in each thread.  A fork bumps a generation counter so a
 * child never repeats its parent's sequence.
 */
#include "tollgate/http.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tollgate/util_hash.h"

/* ---- request ids ---------------------------------------------------------- */

static bool reqid_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

bool http_reqid_valid(const char *s)
{
    size_t i;

    if (s == NULL)
        return false;
    for (i = 0; s[i] != '\0'; i++)
        if (i >= HTTP_REQID_MAX || !reqid_char((unsigned char)s[i]))
            return false;
    return i > 0;
}

typedef struct prng {
    uint64_t s[4];
    unsigned gen; /* fork generation this state was seeded in */
    bool seeded;
} prng_t;

static _Thread_local prng_t tl_prng;
static atomic_uint fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
}

static void register_atfork(void)
{
    (void)pthread_atfork(NULL, NULL, on_fork_child);
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Seed from getrandom; if that is unavailable, from time, pid and the
 * state's address (unique per thread) through splitmix64. */
static void prng_seed(prng_t *p)
{
    struct timespec ts;
    uint64_t x;
    int i;

    if (util_random(p->s, sizeof(p->s)) != 0) {
        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        x ^= (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)p;
        for (i = 0; i < 4; i++)
            p->s[i] ^= splitmix64(&x);
    }
    if ((p->s[0] | p->s[1] | p->s[2] | p->s[3]) == 0)
        p->s[0] = 1; /* xoshiro's one forbidden state */
    p->seeded = true;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman & Vigna). */
static uint64_t prng_next(prng_t *p)
{
    uint64_t *s = p->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

void http_reqid_new(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    prng_t *p = &tl_prng;
    unsigned gen;
    uint8_t b[16];
    uint64_t hi, lo;
    int i, o = 0;

    pthread_once(&atfork_once, register_atfork);
    gen = atomic_load_explicit(&fork_gen, memory_order_relaxed);
    if (!p->seeded || p->gen != gen) {
        prng_seed(p);
        p->gen = gen;
    }
    hi = prng_next(p);
    lo = prng_next(p);
    for (i = 0; i < 8; i++) {
        b[i] = (uint8_t)(hi >> (56 - 8 * i));
        b[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* variant 10 */
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}
