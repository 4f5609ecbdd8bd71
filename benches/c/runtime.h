/* Shared by the workloads: bdwgc set-up, pause recording, metrics. */
#ifndef DUNEGC_BDWGC_RUNTIME_H
#define DUNEGC_BDWGC_RUNTIME_H

#include <stdint.h>

#include "workloads.h"

/* Initialise bdwgc (incremental or not) and start the clock.
 * Returns DUNEGC_BDWGC_OK or an error code from workloads.h. */
int dunegc_rt_begin(int incremental);

/* Stop the clock and fill `out`. */
void dunegc_rt_end(struct dunegc_bdwgc_metrics *out, uint64_t checksum);

/* Deterministic PRNG (xorshift64*), same sequence in the Rust tests. */
static inline uint64_t dunegc_rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

#endif
