/*
 * XML: generate a document of several MB as a string, parse it into a DOM
 * of GC-allocated nodes, query it, drop it; 4 rounds.
 *
 * The document is `scale * 1000` <item> elements under <catalog>; item i has
 * kind alpha/beta/gamma (i % 3), a <name> with an entity, a <price>
 * ((i * 37) % 1000), <tags> with i % 4 <tag> children, and every fifth item
 * an empty <flag/>. Queries: count all elements; count beta items and sum
 * their prices; find the middle item by id and check its decoded name.
 * checksum = (elements + beta items) summed over the rounds.
 */
#include <gc/gc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

#define N_ROUNDS 4

/* ---- generation: a growable GC_MALLOC_ATOMIC string ---- */

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} StrBuf;

static void sb_put(StrBuf *sb, const char *s, size_t n)
{
    if (sb->oom)
        return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap * 2 : 4096;
        while (cap < sb->len + n + 1)
            cap *= 2;
        char *b = (char *)GC_REALLOC(sb->buf, cap);
        if (b == NULL) {
            sb->oom = 1;
            return;
        }
        sb->buf = b;
        sb->cap = cap;
    }
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

static void sb_printf(StrBuf *sb, const char *fmt, uint64_t a, uint64_t b)
{
    char tmp[128];
    int n = snprintf(tmp, sizeof tmp, fmt, (unsigned long long)a,
                     (unsigned long long)b);
    sb_put(sb, tmp, (size_t)n);
}

static const char *const KINDS[3] = {"alpha", "beta", "gamma"};

static char *generate(uint64_t n_items, uint32_t round)
{
    StrBuf sb = {0};
    uint64_t i, t;

    sb.buf = (char *)GC_MALLOC_ATOMIC(4096);
    sb.cap = sb.buf ? 4096 : 0;
    sb_printf(&sb, "<?xml version=\"1.0\"?>\n<catalog round=\"%llu\">\n",
              round, 0);
    for (i = 0; i < n_items; i++) {
        sb_printf(&sb, "  <item id=\"%llu\" kind=\"", i, 0);
        sb_put(&sb, KINDS[i % 3], strlen(KINDS[i % 3]));
        sb_printf(&sb, "\"><name>Item &amp; number %llu</name>"
                       "<price>%llu</price><tags>", i, (i * 37) % 1000);
        for (t = 0; t < i % 4; t++)
            sb_printf(&sb, "<tag>t%llu</tag>", t, 0);
        sb_put(&sb, "</tags>", 7);
        if (i % 5 == 0)
            sb_put(&sb, "<flag/>", 7);
        sb_put(&sb, "</item>\n", 8);
    }
    sb_put(&sb, "</catalog>\n", 11);
    return sb.oom || sb.buf == NULL ? NULL : sb.buf;
}

/* ---- the DOM and its parser ---- */

typedef struct Attr {
    struct Attr *next;
    char *name, *value;
} Attr;

typedef struct XNode {
    char *name;
    Attr *attrs;
    struct XNode *parent, *first_child, *last_child, *next_sibling;
    char *text; /* decoded character data directly inside, or NULL */
} XNode;

typedef struct {
    const char *p;
    int error;
} Parser;

static int is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-' || c == ':' ||
           c == '.';
}

static void skip_space(Parser *ps)
{
    while (is_space(*ps->p))
        ps->p++;
}

static char *copy_str(const char *s, size_t n)
{
    char *c = (char *)GC_MALLOC_ATOMIC(n + 1);
    if (c != NULL) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

/* Copy [s, s+n) decoding the five predefined entities. */
static char *decode(const char *s, size_t n)
{
    char *c = (char *)GC_MALLOC_ATOMIC(n + 1), *o = c;
    const char *end = s + n;
    static const struct { const char *ent; char ch; } ents[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'},
        {"&apos;", '\''}};

    if (c == NULL)
        return NULL;
    while (s < end) {
        size_t k, len;
        int done = 0;
        if (*s == '&') {
            for (k = 0; k < sizeof ents / sizeof ents[0] && !done; k++) {
                len = strlen(ents[k].ent);
                if ((size_t)(end - s) >= len && !memcmp(s, ents[k].ent, len)) {
                    *o++ = ents[k].ch;
                    s += len;
                    done = 1;
                }
            }
        }
        if (!done)
            *o++ = *s++;
    }
    *o = '\0';
    return c;
}

static char *parse_name(Parser *ps)
{
    const char *s = ps->p;
    while (is_name_char(*ps->p))
        ps->p++;
    if (ps->p == s) {
        ps->error = 1;
        return NULL;
    }
    return copy_str(s, (size_t)(ps->p - s));
}

static XNode *parse_element(Parser *ps, XNode *parent);

/* Parse the content of `el` up to and including its end tag. */
static void parse_content(Parser *ps, XNode *el)
{
    while (!ps->error) {
        const char *s = ps->p;
        while (*ps->p && *ps->p != '<')
            ps->p++;
        if (ps->p > s) {
            const char *q = s;
            while (q < ps->p && is_space(*q))
                q++;
            if (q < ps->p && el->text == NULL)
                el->text = decode(s, (size_t)(ps->p - s));
        }
        if (*ps->p == '\0') {
            ps->error = 1;
            return;
        }
        if (ps->p[1] == '/') {
            size_t n = strlen(el->name);
            ps->p += 2;
            if (strncmp(ps->p, el->name, n) != 0 || ps->p[n] != '>') {
                ps->error = 1;
                return;
            }
            ps->p += n + 1;
            return;
        }
        parse_element(ps, el);
    }
}

static XNode *parse_element(Parser *ps, XNode *parent)
{
    XNode *el;

    if (*ps->p != '<') {
        ps->error = 1;
        return NULL;
    }
    ps->p++;
    el = (XNode *)GC_MALLOC(sizeof *el);
    if (el == NULL) {
        ps->error = 1;
        return NULL;
    }
    el->parent = parent;
    if (parent != NULL) {
        if (parent->last_child != NULL)
            parent->last_child->next_sibling = el;
        else
            parent->first_child = el;
        parent->last_child = el;
    }
    el->name = parse_name(ps);
    for (;;) {
        Attr *a;
        const char *v;
        skip_space(ps);
        if (ps->error || *ps->p == '>' || *ps->p == '/')
            break;
        a = (Attr *)GC_MALLOC(sizeof *a);
        if (a == NULL) {
            ps->error = 1;
            return NULL;
        }
        a->name = parse_name(ps);
        if (ps->error || ps->p[0] != '=' || ps->p[1] != '"') {
            ps->error = 1;
            return NULL;
        }
        ps->p += 2;
        v = ps->p;
        while (*ps->p && *ps->p != '"')
            ps->p++;
        if (*ps->p != '"') {
            ps->error = 1;
            return NULL;
        }
        a->value = decode(v, (size_t)(ps->p - v));
        ps->p++;
        a->next = el->attrs;
        el->attrs = a;
    }
    if (ps->error)
        return NULL;
    if (ps->p[0] == '/' && ps->p[1] == '>') {
        ps->p += 2;
        return el;
    }
    ps->p++; /* '>' */
    parse_content(ps, el);
    return el;
}

static XNode *parse_document(const char *doc)
{
    Parser ps = {doc, 0};
    XNode *root;

    if (strncmp(ps.p, "<?", 2) == 0) {
        ps.p = strstr(ps.p, "?>");
        if (ps.p == NULL)
            return NULL;
        ps.p += 2;
    }
    skip_space(&ps);
    root = parse_element(&ps, NULL);
    return ps.error ? NULL : root;
}

/* ---- queries ---- */

static const char *attr(const XNode *n, const char *name)
{
    const Attr *a;
    for (a = n->attrs; a != NULL; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a->value;
    return NULL;
}

static const XNode *child(const XNode *n, const char *name)
{
    const XNode *c;
    for (c = n->first_child; c != NULL; c = c->next_sibling)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static uint64_t count_elements(const XNode *n)
{
    uint64_t count = 1;
    const XNode *c;
    for (c = n->first_child; c != NULL; c = c->next_sibling)
        count += count_elements(c);
    return count;
}

/* The elements the generator wrote. */
static uint64_t expected_elements(uint64_t n_items)
{
    uint64_t i, n = 1;
    for (i = 0; i < n_items; i++)
        n += 4 + i % 4 + (i % 5 == 0);
    return n;
}

int dunegc_bdwgc_xml(uint32_t scale, int incremental,
                     struct dunegc_bdwgc_metrics *out)
{
    uint64_t n_items = (uint64_t)scale * 1000, checksum = 0;
    uint32_t round;
    int rc;

    if (scale < 1 || scale > 10000)
        return DUNEGC_BDWGC_EBADSCALE;
    rc = dunegc_rt_begin(incremental);
    if (rc != DUNEGC_BDWGC_OK)
        return rc;

    for (round = 0; round < N_ROUNDS; round++) {
        uint64_t i, elements, beta = 0, price_sum = 0, want_sum = 0, mid;
        const XNode *item, *found = NULL;
        char want_name[64];
        char *doc = generate(n_items, round);
        XNode *root;

        if (doc == NULL)
            return DUNEGC_BDWGC_EOOM;
        root = parse_document(doc);
        doc = NULL; /* the text is garbage once parsed */
        if (root == NULL || strcmp(root->name, "catalog") != 0)
            return DUNEGC_BDWGC_ECHECK;

        elements = count_elements(root);
        mid = n_items / 2;
        for (item = root->first_child; item != NULL; item = item->next_sibling) {
            const char *kind = attr(item, "kind"), *id = attr(item, "id");
            const XNode *price = child(item, "price");
            if (kind == NULL || id == NULL || price == NULL || !price->text)
                return DUNEGC_BDWGC_ECHECK;
            if (strcmp(kind, "beta") == 0) {
                beta++;
                price_sum += strtoull(price->text, NULL, 10);
            }
            if (strtoull(id, NULL, 10) == mid)
                found = item;
        }
        for (i = 1; i < n_items; i += 3)
            want_sum += (i * 37) % 1000;
        snprintf(want_name, sizeof want_name, "Item & number %llu",
                 (unsigned long long)mid);
        if (elements != expected_elements(n_items) || price_sum != want_sum ||
            found == NULL || child(found, "name") == NULL ||
            strcmp(child(found, "name")->text, want_name) != 0)
            return DUNEGC_BDWGC_ECHECK;
        checksum += elements + beta;
        root = NULL; /* drop the DOM */
        (void)root;
    }
    dunegc_rt_end(out, checksum);
    return DUNEGC_BDWGC_OK;
}
