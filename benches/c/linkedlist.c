/*
 * LinkedList: long singly linked lists built, traversed and partly dropped.
 *
 * Eight list slots live in a GC-allocated array. Each of 32 rounds builds a
 * list of `scale * 1000` nodes into slot r % 8 (dropping the list that was
 * there), traverses it, then cuts the list in slot (r + 3) % 8 after its
 * first half, dropping the tail. checksum = nodes live at the end, which the
 * code verifies by a final traversal against its own bookkeeping.
 */
#include <gc/gc.h>
#include <stddef.h>

#include "runtime.h"

#define N_SLOTS 8
#define N_ROUNDS 32

typedef struct ListNode {
    struct ListNode *next;
    uint64_t value;
} ListNode;

static uint64_t list_len(const ListNode *n)
{
    uint64_t len = 0;
    for (; n != NULL; n = n->next)
        len++;
    return len;
}

int dunegc_bdwgc_linkedlist(uint32_t scale, int incremental,
                            struct dunegc_bdwgc_metrics *out)
{
    uint64_t len = (uint64_t)scale * 1000, lens[N_SLOTS] = {0}, live = 0;
    ListNode **slots;
    uint32_t r;
    int rc;

    if (scale < 1 || scale > 100000)
        return DUNEGC_BDWGC_EBADSCALE;
    rc = dunegc_rt_begin(incremental);
    if (rc != DUNEGC_BDWGC_OK)
        return rc;
    slots = (ListNode **)GC_MALLOC(N_SLOTS * sizeof *slots);
    if (slots == NULL)
        return DUNEGC_BDWGC_EOOM;

    for (r = 0; r < N_ROUNDS; r++) {
        ListNode *head = NULL, *n;
        uint64_t i, count = 0, sum = 0, keep;
        uint32_t cut = (r + 3) % N_SLOTS;

        /* Build by prepending: values len-1 .. 0 from the head. */
        for (i = 0; i < len; i++) {
            n = (ListNode *)GC_MALLOC(sizeof *n);
            if (n == NULL)
                return DUNEGC_BDWGC_EOOM;
            n->value = i;
            n->next = head;
            head = n;
        }
        slots[r % N_SLOTS] = head;
        lens[r % N_SLOTS] = len;

        /* Traverse. */
        for (n = slots[r % N_SLOTS]; n != NULL; n = n->next) {
            count++;
            sum += n->value;
        }
        if (count != len || sum != len * (len - 1) / 2)
            return DUNEGC_BDWGC_ECHECK;

        /* Partly drop another list: keep its first half. */
        keep = lens[cut] / 2;
        if (keep == 0) {
            slots[cut] = NULL;
        } else {
            n = slots[cut];
            for (i = 1; i < keep; i++)
                n = n->next;
            n->next = NULL;
        }
        lens[cut] = keep;
    }

    for (r = 0; r < N_SLOTS; r++) {
        if (list_len(slots[r]) != lens[r])
            return DUNEGC_BDWGC_ECHECK;
        live += lens[r];
    }
    dunegc_rt_end(out, live);
    return DUNEGC_BDWGC_OK;
}
