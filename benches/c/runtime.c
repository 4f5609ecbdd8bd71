/*
 * bdwgc set-up and metrics for the workloads.
 *
 * Pauses: bdwgc reports collection progress through
 * GC_set_on_collection_event. A pause is the time the (single) mutator
 * thread spends inside one collection, as bracketed by those events:
 *  - a full collection: GC_EVENT_START .. GC_EVENT_END;
 *  - the end of an incremental cycle (bdwgc 8.2 raises no START/END there):
 *    GC_EVENT_PRE_STOP_WORLD .. GC_EVENT_RECLAIM_END, i.e. the world-stopped
 *    finishing mark plus GC_finish_collection (finalisation, sweep set-up);
 *    an abandoned stopped mark ends at GC_EVENT_POST_START_WORLD.
 * The longest PRE_STOP_WORLD .. POST_START_WORLD span is kept separately.
 * Incremental mark steps that bdwgc runs inside GC_MALLOC, and lazy sweeping,
 * raise no event and are not counted: in incremental mode `gc_ns` is a lower
 * bound of the GC's work (compare wall times).
 *
 * The callback runs with the GC lock held: it only reads the clock and
 * stores into static arrays (no allocation, no I/O).
 */
#include "runtime.h"

/* Declares GC_get_parallel(); this file creates no threads. */
#define GC_THREADS
#include <gc/gc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_PAUSE_SAMPLES (1u << 20)

static int initialised;
static uint64_t start_ns, start_gc_no;
static uint64_t pause_begin_ns;
static int in_bracket; /* 0: none, 1: START..END, 2: PRE_STOP..RECLAIM_END */
static int mark_done;  /* MARK_END seen in bracket 2 */
static uint64_t stopped_begin_ns, max_stopped_ns;
static uint64_t *pause_samples;
static uint64_t n_pauses, n_dropped, max_pause_ns, total_pause_ns;
static uint64_t peak_heap_bytes;
static int trace_events;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void record_pause(uint64_t ns)
{
    size_t heap = GC_get_heap_size();

    if (n_pauses < MAX_PAUSE_SAMPLES)
        pause_samples[n_pauses] = ns;
    else
        n_dropped++;
    n_pauses++;
    total_pause_ns += ns;
    if (ns > max_pause_ns)
        max_pause_ns = ns;
    if (heap > peak_heap_bytes)
        peak_heap_bytes = heap;
}

static void close_bracket(uint64_t t)
{
    in_bracket = 0;
    record_pause(t - pause_begin_ns);
}

static void GC_CALLBACK on_event(GC_EventType ev)
{
    uint64_t t = now_ns();

    if (trace_events) {
        /* Diagnostics only (DUNEGC_BDWGC_TRACE_EVENTS=1), never measured. */
        fprintf(stderr, "bdwgc event %d at %llu ns\n", (int)ev,
                (unsigned long long)(t - start_ns));
    }
    switch (ev) {
    case GC_EVENT_START:
        if (in_bracket == 0) {
            in_bracket = 1;
            pause_begin_ns = t;
        }
        break;
    case GC_EVENT_END:
        if (in_bracket == 1)
            close_bracket(t);
        break;
    case GC_EVENT_PRE_STOP_WORLD:
        stopped_begin_ns = t;
        if (in_bracket == 0) {
            in_bracket = 2;
            mark_done = 0;
            pause_begin_ns = t;
        }
        break;
    case GC_EVENT_MARK_END:
        mark_done = 1;
        break;
    case GC_EVENT_POST_START_WORLD:
        if (t - stopped_begin_ns > max_stopped_ns)
            max_stopped_ns = t - stopped_begin_ns;
        /* An abandoned world-stopped mark (no MARK_END) reclaims nothing. */
        if (in_bracket == 2 && !mark_done)
            close_bracket(t);
        break;
    case GC_EVENT_RECLAIM_END:
        if (in_bracket == 2)
            close_bracket(t);
        break;
    default:
        break;
    }
}

int dunegc_rt_begin(int incremental)
{
    if (initialised)
        return DUNEGC_BDWGC_EALREADY;
    initialised = 1;

    /* Outside the GC heap (plain malloc), never scanned. */
    pause_samples = malloc(MAX_PAUSE_SAMPLES * sizeof *pause_samples);
    if (pause_samples == NULL)
        return DUNEGC_BDWGC_EOOM;
    trace_events = getenv("DUNEGC_BDWGC_TRACE_EVENTS") != NULL;

    /* bdwgc decides incremental mode before its first allocation. */
    if (incremental)
        GC_enable_incremental();
    GC_INIT();
    if (incremental && !GC_is_incremental_mode())
        return DUNEGC_BDWGC_ENOINCREMENTAL;
    GC_start_performance_measurement();
    GC_set_on_collection_event(on_event);
    start_gc_no = GC_get_gc_no();
    if (trace_events)
        fprintf(stderr, "bdwgc gc_no after init: %lu\n", (unsigned long)start_gc_no);
    start_ns = now_ns();
    return DUNEGC_BDWGC_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

void dunegc_rt_end(struct dunegc_bdwgc_metrics *out, uint64_t checksum)
{
    uint64_t end_ns = now_ns();
    uint64_t kept = n_pauses < MAX_PAUSE_SAMPLES ? n_pauses : MAX_PAUSE_SAMPLES;
    struct rusage ru;

    GC_set_on_collection_event(0);
    memset(out, 0, sizeof *out);
    out->wall_ns = end_ns - start_ns;
    out->gc_ns = total_pause_ns;
    out->full_gc_total_ms = GC_get_full_gc_total_time();
    out->collections = GC_get_gc_no() - start_gc_no;
    out->n_pauses = n_pauses;
    out->n_pauses_dropped = n_dropped;
    out->max_pause_ns = max_pause_ns;
    out->max_stopped_ns = max_stopped_ns;
    if (kept > 0) {
        /* Nearest-rank p99 over the recorded samples. */
        uint64_t rank = (kept * 99 + 99) / 100;
        qsort(pause_samples, kept, sizeof *pause_samples, cmp_u64);
        out->p99_pause_ns = pause_samples[rank - 1];
    }
    out->heap_bytes = GC_get_heap_size();
    out->peak_heap_bytes =
        peak_heap_bytes > out->heap_bytes ? peak_heap_bytes : out->heap_bytes;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        out->peak_rss_bytes = (uint64_t)ru.ru_maxrss * 1024u;
    out->checksum = checksum;
    out->incremental = GC_is_incremental_mode();
    out->protection_needs = GC_incremental_protection_needs();
    out->parallel_markers = GC_get_parallel();
}

const char *dunegc_bdwgc_version(void)
{
    static char buf[32];
    unsigned v = GC_get_version(); /* (major << 16) | (minor << 8) | micro */
    snprintf(buf, sizeof buf, "%u.%u.%u", v >> 16, (v >> 8) & 0xff, v & 0xff);
    return buf;
}
