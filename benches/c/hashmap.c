/*
 * HashMap: a large chained hash map with churn of GC-allocated keys and
 * values.
 *
 * `scale * 1000` keys are inserted, then 8x as many random operations over
 * a key space twice that size: put (a new value and a fresh key string, the
 * old ones dropped), remove, get. Buckets double when the load exceeds 1;
 * the old bucket array becomes garbage. A malloc'd (unscanned) shadow of
 * versions checks every get and, at the end, every key.
 * checksum = entries at the end (the Rust test replays the PRNG).
 */
#include <gc/gc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

#define CHURN_FACTOR 8
#define RNG_SEED UINT64_C(0x9E3779B97F4A7C15)

typedef struct Value {
    uint64_t id;
    uint64_t version;
    const char *key; /* makes values pointer-bearing, as in real maps */
    uint64_t payload;
} Value;

typedef struct Entry {
    struct Entry *next;
    char *key; /* GC_MALLOC_ATOMIC string "key-<id>" */
    Value *value;
    uint64_t hash;
} Entry;

typedef struct Map {
    Entry **buckets;
    uint64_t n_buckets; /* a power of two */
    uint64_t count;
} Map;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static char *make_key(uint64_t id)
{
    char *k = (char *)GC_MALLOC_ATOMIC(24);
    if (k != NULL)
        snprintf(k, 24, "key-%llu", (unsigned long long)id);
    return k;
}

static int map_grow(Map *m)
{
    uint64_t i, n = m->n_buckets * 2;
    Entry **b = (Entry **)GC_MALLOC(n * sizeof *b);

    if (b == NULL)
        return -1;
    for (i = 0; i < m->n_buckets; i++) {
        Entry *e = m->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    m->buckets = b;
    m->n_buckets = n;
    return 0;
}

static Entry **map_slot(Map *m, const char *key, uint64_t hash)
{
    Entry **p = &m->buckets[hash & (m->n_buckets - 1)];
    for (; *p != NULL; p = &(*p)->next)
        if ((*p)->hash == hash && strcmp((*p)->key, key) == 0)
            break;
    return p;
}

/* Insert or replace; fresh key string and value either way. */
static int map_put(Map *m, uint64_t id, uint64_t version)
{
    char *key = make_key(id);
    uint64_t hash;
    Value *v;
    Entry **p;

    if (key == NULL)
        return -1;
    v = (Value *)GC_MALLOC(sizeof *v);
    if (v == NULL)
        return -1;
    v->id = id;
    v->version = version;
    v->key = key;
    v->payload = id * 31 + version;
    hash = fnv1a(key);
    p = map_slot(m, key, hash);
    if (*p != NULL) {
        (*p)->key = key;
        (*p)->value = v;
        return 0;
    }
    *p = (Entry *)GC_MALLOC(sizeof(Entry));
    if (*p == NULL)
        return -1;
    (*p)->key = key;
    (*p)->value = v;
    (*p)->hash = hash;
    m->count++;
    if (m->count > m->n_buckets)
        return map_grow(m);
    return 0;
}

static const Value *map_get(Map *m, uint64_t id)
{
    char key[24];
    Entry **p;

    snprintf(key, sizeof key, "key-%llu", (unsigned long long)id);
    p = map_slot(m, key, fnv1a(key));
    return *p == NULL ? NULL : (*p)->value;
}

static void map_remove(Map *m, uint64_t id)
{
    char key[24];
    Entry **p;

    snprintf(key, sizeof key, "key-%llu", (unsigned long long)id);
    p = map_slot(m, key, fnv1a(key));
    if (*p != NULL) {
        *p = (*p)->next;
        m->count--;
    }
}

static int check(Map *m, const uint32_t *shadow, uint64_t id)
{
    const Value *v = map_get(m, id);
    char key[24];

    if (shadow[id] == 0)
        return v == NULL;
    snprintf(key, sizeof key, "key-%llu", (unsigned long long)id);
    return v != NULL && v->id == id && v->version == shadow[id] &&
           v->payload == id * 31 + v->version && strcmp(v->key, key) == 0;
}

int dunegc_bdwgc_hashmap(uint32_t scale, int incremental,
                         struct dunegc_bdwgc_metrics *out)
{
    uint64_t n_keys = (uint64_t)scale * 1000, space = 2 * n_keys, i, ops;
    uint64_t rng = RNG_SEED, live = 0;
    uint32_t *shadow; /* version per key, 0 = absent; plain malloc */
    Map *m;
    int rc, ok = 1;

    if (scale < 1 || scale > 100000)
        return DUNEGC_BDWGC_EBADSCALE;
    rc = dunegc_rt_begin(incremental);
    if (rc != DUNEGC_BDWGC_OK)
        return rc;
    shadow = (uint32_t *)calloc(space, sizeof *shadow);
    m = (Map *)GC_MALLOC(sizeof *m);
    if (shadow == NULL || m == NULL)
        return DUNEGC_BDWGC_EOOM;
    m->n_buckets = 1024;
    m->buckets = (Entry **)GC_MALLOC(m->n_buckets * sizeof *m->buckets);
    if (m->buckets == NULL)
        return DUNEGC_BDWGC_EOOM;

    for (i = 0; i < n_keys; i++) {
        if (map_put(m, i, 1) != 0)
            return DUNEGC_BDWGC_EOOM;
        shadow[i] = 1;
    }
    for (ops = 0; ops < CHURN_FACTOR * n_keys; ops++) {
        uint64_t x = dunegc_rng_next(&rng);
        uint64_t id = x % space;
        switch ((x >> 32) % 4) {
        case 0:
        case 1:
            if (map_put(m, id, shadow[id] + 1) != 0)
                return DUNEGC_BDWGC_EOOM;
            shadow[id]++;
            break;
        case 2:
            map_remove(m, id);
            shadow[id] = 0;
            break;
        default:
            ok &= check(m, shadow, id);
            break;
        }
    }

    for (i = 0; i < space; i++) {
        ok &= check(m, shadow, i);
        live += shadow[i] != 0;
    }
    free(shadow);
    if (!ok || live != m->count)
        return DUNEGC_BDWGC_ECHECK;
    dunegc_rt_end(out, m->count);
    return DUNEGC_BDWGC_OK;
}
