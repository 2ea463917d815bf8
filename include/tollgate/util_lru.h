/* util_lru.h — an intrusive doubly linked LRU list.
 *
 * An entry embeds a util_lru_node_t; UTIL_LRU_ENTRY gets the entry back from
 * its node.  The head is the most recently touched, the tail the coldest.
 * Not thread-safe: the owner holds its own lock.
 */
#ifndef TOLLGATE_UTIL_LRU_H
#define TOLLGATE_UTIL_LRU_H

#include <stddef.h>

typedef struct util_lru_node {
    struct util_lru_node *prev, *next; /* towards the head, the tail */
} util_lru_node_t;

typedef struct util_lru {
    util_lru_node_t *head, *tail; /* NULL when empty */
} util_lru_t;

/* The entry of type `type` whose member `member` is the node `n` (or NULL). */
#define UTIL_LRU_ENTRY(n, type, member)                                                    \
    ((n) != NULL ? (type *)(void *)((char *)(n)-offsetof(type, member)) : (type *)NULL)

/* Takes `n` out of the list. */
static inline void util_lru_unlink(util_lru_t *l, util_lru_node_t *n)
{
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

/* Puts `n`, not in the list, at the head. */
static inline void util_lru_push(util_lru_t *l, util_lru_node_t *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head != NULL)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
}

/* Moves `n`, in the list, to the head. */
static inline void util_lru_touch(util_lru_t *l, util_lru_node_t *n)
{
    if (l->head != n) {
        util_lru_unlink(l, n);
        util_lru_push(l, n);
    }
}

#endif
