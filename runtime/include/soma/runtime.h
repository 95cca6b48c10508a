/* Soma's runtime C ABI: the functions generated code calls. Plain C, no Soma internals. */
#ifndef SOMA_RUNTIME_H
#define SOMA_RUNTIME_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A kernel computes rows [lo, hi) of its outermost loop. */
typedef void (*soma_kernel_fn)(void *ctx, int64_t lo, int64_t hi);

/* Runs fn over rows [0, rows), split into contiguous blocks over the runtime's threads when
   rows * cost_per_row is large enough to pay for it. Each row is computed by exactly one
   thread, so results do not depend on the thread count. */
void soma_rt_parallel_for(soma_kernel_fn fn, void *ctx, int64_t rows, int64_t cost_per_row);

/* Profiling (soma run --profile): while a buffer is set, the i-th soma_rt_parallel_for call since
   the last soma_rt_profile_reset adds its wall-clock seconds to seconds[i]; calls past `count`
   are not timed. NULL stops it. */
void soma_rt_profile_set(double *seconds, int64_t count);
void soma_rt_profile_reset(void);

/* Sets the number of threads (>= 1), starting or stopping workers. */
void soma_rt_set_threads(int threads);
int soma_rt_threads(void);

#ifdef __cplusplus
}
#endif
#endif
