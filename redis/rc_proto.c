/* rc_proto.c — the pure parts of the Redis Cluster protocol, no I/O: key
 * slots (CRC16 and hash tags), MOVED/ASK redirections, "host:port".  See
 * include/tollgate/rc_proto.h; tests and fuzzers use these without the
 * client's internals.
 */
#include "tollgate/rc_proto.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* CRC16-CCITT, XMODEM variant (poly 0x1021, init 0, no reflection), as the
 * Redis Cluster specification prescribes: crc16("123456789") == 0x31C3. */
static uint16_t crc16_xmodem(const unsigned char *p, size_t len)
{
    uint16_t crc = 0;

    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned rc_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);

    if (open != NULL) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);

        /* Only a non-empty tag counts: "foo{}{bar}" hashes the whole key. */
        if (close != NULL && close > open + 1) {
            key = open + 1;
            len = (size_t)(close - key);
        }
    }
    return crc16_xmodem((const unsigned char *)key, len) & (RC_NSLOTS - 1);
}

int rc_hostport_parse(const char *s, size_t len, char *host, size_t hostlen, unsigned *port)
{
    const char *colon, *h = s;
    size_t hl;
    unsigned long p = 0;

    if (len > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', len);

        if (rb == NULL || rb + 1 >= s + len || rb[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = NULL;
        for (size_t i = len; i > 0; i--)
            if (s[i - 1] == ':') {
                colon = s + i - 1;
                break;
            }
        if (colon == NULL)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen || memchr(h, '\0', hl) != NULL)
        return -1;
    if (colon + 1 >= s + len || s + len - (colon + 1) > 5)
        return -1;
    for (const char *q = colon + 1; q < s + len; q++) {
        if (*q < '0' || *q > '9')
            return -1;
        p = p * 10 + (unsigned long)(*q - '0');
    }
    if (p == 0 || p > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (unsigned)p;
    return 0;
}

int rc_redirect_parse(const char *s, size_t len, rc_redirect_t *out)
{
    size_t skip, i;
    unsigned long slot = 0;

    memset(out, 0, sizeof(*out));
    if (len > 6 && memcmp(s, "MOVED ", 6) == 0) {
        out->kind = RC_REDIR_MOVED;
        skip = 6;
    } else if (len > 4 && memcmp(s, "ASK ", 4) == 0) {
        out->kind = RC_REDIR_ASK;
        skip = 4;
    } else {
        return -1;
    }
    for (i = skip; i < len && s[i] >= '0' && s[i] <= '9' && i - skip < 6; i++)
        slot = slot * 10 + (unsigned long)(s[i] - '0');
    if (i == skip || i >= len || s[i] != ' ' || slot >= RC_NSLOTS)
        goto out_bad;
    out->slot = (unsigned)slot;
    i++;
    if (rc_hostport_parse(s + i, len - i, out->host, sizeof(out->host), &out->port) != 0)
        goto out_bad;
    return 0;
out_bad:
    out->kind = RC_REDIR_NONE;
    return -1;
}

/* ---- a reader with a bound on announced arrays ----------------------------
 * hiredis keeps its default reply functions static, but a reader made with
 * them points at the table (reader->fn): copy it once and replace
 * createArray with a checked one. */
static redisReplyObjectFunctions capped_fns;
static void *(*default_create_array)(const redisReadTask *, int);
static pthread_once_t capped_once = PTHREAD_ONCE_INIT;

static void *capped_create_array(const redisReadTask *task, int elements)
{
    if (elements < 0 || elements > RC_MAX_ARRAY)
        return NULL; /* hiredis: "Out of memory" error, the reply is refused */
    return default_create_array(task, elements);
}

static void capped_init(void)
{
    redisReader *r = redisReaderCreate();

    if (r == NULL || r->fn == NULL || r->fn->createArray == NULL) {
        if (r != NULL)
            redisReaderFree(r);
        return;
    }
    capped_fns = *r->fn;
    default_create_array = capped_fns.createArray;
    capped_fns.createArray = capped_create_array;
    redisReaderFree(r);
}

struct redisReader *rc_reader_new(void)
{
    pthread_once(&capped_once, capped_init);
    if (default_create_array == NULL)
        return NULL;
    return redisReaderCreateWithFunctions(&capped_fns);
}
