/* srv_net.h — addresses: CIDR lists (trusted_proxies), the client IP from
 * X-Forwarded-For, and "host:port" listen addresses.
 */
#ifndef TOLLGATE_SRV_NET_H
#define TOLLGATE_SRV_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRV_IP_STRLEN 46 /* INET6_ADDRSTRLEN */

typedef struct srv_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network byte order; 4 bytes used for AF_INET */
    unsigned prefix;  /* bits */
} srv_cidr_t;

typedef struct srv_cidr_list {
    srv_cidr_t *v;
    size_t n;
} srv_cidr_list_t;

/* "10.0.0.0/8", "fc00::/7", "127.0.0.1" (= /32).  Host bits must be zero.
 * 0 or -1. */
int srv_cidr_parse(const char *s, srv_cidr_t *out);

/* Append; 0 or -1 (out of memory). */
int srv_cidr_list_add(srv_cidr_list_t *l, const srv_cidr_t *c);

/* The default trusted_proxies: 127.0.0.0/8, ::1, 10/8, 172.16/12, 192.168/16, fc00::/7. */
int srv_cidr_list_default(srv_cidr_list_t *l);
void srv_cidr_list_clear(srv_cidr_list_t *l);

/* Is the textual address `ip` (v4, v6, or v4-mapped v6) in the list? */
bool srv_cidr_list_contains(const srv_cidr_list_t *l, const char *ip);

/* The client address of a request that arrived from `peer_ip` with the
 * X-Forwarded-For value `xff` (may be NULL).  When the peer is trusted, walk
 * XFF from the right and take the first hop that is not trusted (or the
 * left-most when all are trusted); a malformed hop ends the walk and the last
 * good address is used.  Writes a normalized address into `out`
 * (>= SRV_IP_STRLEN). */
void srv_client_ip(const char *peer_ip, const char *xff, const srv_cidr_list_t *trusted,
                   char *out, size_t outlen);

/* Split "0.0.0.0:8080", "[::]:8080", ":8080" into host (default "0.0.0.0")
 * and port.  0 or -1. */
int srv_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);

#endif
