/*
 * The bdwgc side of dunegc's peer comparison (issues 3, 4, 9).
 *
 * Each workload is one function taking a scale and an `incremental` flag and
 * filling a `dunegc_bdwgc_metrics`. bdwgc is a process-wide singleton that
 * must choose incremental mode before its first allocation, so a process may
 * run exactly one workload: a second call returns DUNEGC_BDWGC_EALREADY.
 * The Rust side (benches/src/bdwgc.rs) runs each configuration in a child
 * process (the `bdwgc-runner` binary) for that reason.
 *
 * Keep this struct in sync with `ffi::Metrics` in benches/src/bdwgc.rs.
 */
#ifndef DUNEGC_BDWGC_WORKLOADS_H
#define DUNEGC_BDWGC_WORKLOADS_H

#include <stdint.h>

struct dunegc_bdwgc_metrics {
    uint64_t wall_ns;          /* the workload, from GC_INIT to its end      */
    uint64_t gc_ns;            /* sum of pauses (see runtime.c)              */
    uint64_t full_gc_total_ms; /* GC_get_full_gc_total_time(), ms            */
    uint64_t collections;      /* GC_get_gc_no() at the end                  */
    uint64_t n_pauses;         /* pauses observed                            */
    uint64_t n_pauses_dropped; /* pauses beyond the sample buffer (max kept) */
    uint64_t max_pause_ns;
    uint64_t p99_pause_ns;
    uint64_t max_stopped_ns;   /* longest world-stopped span                 */
    uint64_t heap_bytes;       /* GC_get_heap_size() at the end              */
    uint64_t peak_heap_bytes;  /* largest GC_get_heap_size() after a pause   */
    uint64_t peak_rss_bytes;   /* getrusage(RUSAGE_SELF).ru_maxrss           */
    uint64_t checksum;         /* workload-defined, see each workload        */
    int32_t incremental;       /* GC_is_incremental_mode()                   */
    int32_t protection_needs;  /* GC_incremental_protection_needs()          */
    int32_t parallel_markers;  /* GC_get_parallel(): helper marker threads   */
    int32_t reserved;
};

/* Return codes of the workload functions. */
#define DUNEGC_BDWGC_OK 0
#define DUNEGC_BDWGC_EALREADY 1        /* bdwgc already initialised here   */
#define DUNEGC_BDWGC_ENOINCREMENTAL 2  /* incremental asked, not turned on */
#define DUNEGC_BDWGC_ECHECK 3          /* the workload's self-check failed */
#define DUNEGC_BDWGC_EOOM 4            /* GC_MALLOC returned NULL          */
#define DUNEGC_BDWGC_EBADSCALE 5       /* scale out of the supported range */

/* GCBench (Ellis, Kovac, Boehm). scale = max tree depth (16 = classic):
 * stretch depth scale+2, long-lived tree depth scale, depths 4..=scale step
 * 2, array of 500000 >> 2*(16-scale) doubles (at least 2048).
 * checksum = tree nodes allocated in all. */
int dunegc_bdwgc_gcbench(uint32_t scale, int incremental,
                         struct dunegc_bdwgc_metrics *out);

/* The classic with every parameter explicit (scale-derived above). */
struct dunegc_gcbench_params {
    uint32_t stretch_tree_depth;
    uint32_t long_lived_tree_depth;
    uint32_t array_len;
    uint32_t min_tree_depth;
    uint32_t max_tree_depth;
};
int dunegc_bdwgc_gcbench_params(const struct dunegc_gcbench_params *params,
                                int incremental,
                                struct dunegc_bdwgc_metrics *out);

/* Long linked lists built, traversed and partly dropped.
 * scale = thousands of nodes per list. checksum = nodes live at the end. */
int dunegc_bdwgc_linkedlist(uint32_t scale, int incremental,
                            struct dunegc_bdwgc_metrics *out);

/* A chained hash map with churn of GC-allocated keys and values.
 * scale = thousands of keys. checksum = entries at the end. */
int dunegc_bdwgc_hashmap(uint32_t scale, int incremental,
                         struct dunegc_bdwgc_metrics *out);

/* Generate an XML document, parse it into a DOM of GC-allocated nodes,
 * query it, drop it. scale = thousands of <item> elements per document.
 * checksum = elements found by the queries, all rounds. */
int dunegc_bdwgc_xml(uint32_t scale, int incremental,
                     struct dunegc_bdwgc_metrics *out);

/* The bdwgc version this was built against, as "major.minor.micro". */
const char *dunegc_bdwgc_version(void);

#endif
