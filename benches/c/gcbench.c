/*
 * GCBench, after Ellis and Kovac's benchmark as adapted to C by Hans Boehm:
 * a stretch tree, a long-lived tree and array, then for each depth many
 * short-lived trees built top-down (Populate) and bottom-up (MakeTree).
 * The allocation pattern is the classic's; only the parameters are passed
 * in, and the nodes allocated are counted for the checksum.
 */
#include <gc/gc.h>
#include <stddef.h>

#include "runtime.h"

typedef struct Node0 {
    struct Node0 *left;
    struct Node0 *right;
    int i, j;
} Node;

static uint64_t nodes_allocated;
static int oom;

static Node *new_node(Node *left, Node *right)
{
    Node *n = (Node *)GC_MALLOC(sizeof(Node));
    if (n == NULL) {
        oom = 1;
        return NULL;
    }
    nodes_allocated++;
    n->left = left;
    n->right = right;
    return n;
}

/* Nodes in a complete binary tree of depth i. */
static uint64_t tree_size(uint32_t i)
{
    return (UINT64_C(1) << (i + 1)) - 1;
}

/* Iterations at depth i so each depth allocates about as much. */
static uint64_t num_iters(uint32_t stretch_depth, uint32_t i)
{
    return 2 * tree_size(stretch_depth) / tree_size(i);
}

/* Build the tree top-down. */
static void populate(uint32_t depth, Node *this_node)
{
    if (depth == 0 || oom)
        return;
    depth--;
    this_node->left = new_node(NULL, NULL);
    this_node->right = new_node(NULL, NULL);
    if (oom)
        return;
    populate(depth, this_node->left);
    populate(depth, this_node->right);
}

/* Build the tree bottom-up. */
static Node *make_tree(uint32_t depth)
{
    Node *left, *right;

    if (depth == 0)
        return new_node(NULL, NULL);
    left = make_tree(depth - 1);
    right = make_tree(depth - 1);
    return oom ? NULL : new_node(left, right);
}

static uint64_t count_nodes(const Node *n)
{
    return n == NULL ? 0 : 1 + count_nodes(n->left) + count_nodes(n->right);
}

static void time_construction(uint32_t stretch_depth, uint32_t depth)
{
    uint64_t i, iters = num_iters(stretch_depth, depth);
    Node *temp_tree;

    for (i = 0; i < iters && !oom; i++) {
        temp_tree = new_node(NULL, NULL);
        if (temp_tree == NULL)
            return;
        populate(depth, temp_tree);
        temp_tree = NULL;
    }
    for (i = 0; i < iters && !oom; i++) {
        temp_tree = make_tree(depth);
        temp_tree = NULL;
    }
    (void)temp_tree;
}

int dunegc_bdwgc_gcbench_params(const struct dunegc_gcbench_params *p,
                                int incremental,
                                struct dunegc_bdwgc_metrics *out)
{
    Node *long_lived_tree, *temp_tree;
    double *array;
    uint32_t d, i;
    int rc;

    if (p->max_tree_depth > 24 || p->stretch_tree_depth > 26 ||
        p->long_lived_tree_depth > 24 || p->array_len / 2 <= 1000 ||
        p->min_tree_depth > p->max_tree_depth)
        return DUNEGC_BDWGC_EBADSCALE;
    rc = dunegc_rt_begin(incremental);
    if (rc != DUNEGC_BDWGC_OK)
        return rc;

    /* Stretch the memory space quickly. */
    temp_tree = make_tree(p->stretch_tree_depth);
    temp_tree = NULL;
    (void)temp_tree;

    /* A long-lived data structure, created top-down. */
    long_lived_tree = new_node(NULL, NULL);
    if (long_lived_tree == NULL)
        return DUNEGC_BDWGC_EOOM;
    populate(p->long_lived_tree_depth, long_lived_tree);

    /* A long-lived array of pointer-free data. */
    array = (double *)GC_MALLOC_ATOMIC(sizeof(double) * p->array_len);
    if (array == NULL)
        return DUNEGC_BDWGC_EOOM;
    for (i = 0; i < p->array_len / 2; i++)
        array[i] = 1.0 / i;

    for (d = p->min_tree_depth; d <= p->max_tree_depth && !oom; d += 2)
        time_construction(p->stretch_tree_depth, d);

    if (oom)
        return DUNEGC_BDWGC_EOOM;
    /* Both long-lived structures must have survived intact. */
    if (count_nodes(long_lived_tree) != tree_size(p->long_lived_tree_depth) ||
        array[1000] != 1.0 / 1000)
        return DUNEGC_BDWGC_ECHECK;

    dunegc_rt_end(out, nodes_allocated);
    return DUNEGC_BDWGC_OK;
}

int dunegc_bdwgc_gcbench(uint32_t scale, int incremental,
                         struct dunegc_bdwgc_metrics *out)
{
    struct dunegc_gcbench_params p;
    uint32_t shift;

    if (scale < 4 || scale > 20)
        return DUNEGC_BDWGC_EBADSCALE;
    shift = scale < 16 ? 2 * (16 - scale) : 0;
    p.stretch_tree_depth = scale + 2;
    p.long_lived_tree_depth = scale;
    p.array_len = 500000u >> shift;
    if (p.array_len < 2048)
        p.array_len = 2048; /* the check reads array[1000] of the filled half */
    p.min_tree_depth = 4;
    p.max_tree_depth = scale;
    return dunegc_bdwgc_gcbench_params(&p, incremental, out);
}
