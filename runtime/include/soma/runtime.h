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

/* Profiling (soma run --profile): while a buffer is set, the i-th kernel since the last
   soma_rt_profile_reset adds its wall-clock seconds to seconds[i]; kernels past `count` are not
   timed. A kernel is one soma_rt_parallel_for call, or a whole loop (a recurrent layer): between
   soma_rt_loop_begin and soma_rt_loop_end the body's calls are the loop's time, one kernel.
   NULL stops it. */
void soma_rt_profile_set(double *seconds, int64_t count);
void soma_rt_profile_reset(void);
void soma_rt_loop_begin(void);
void soma_rt_loop_end(void);

/* Sets the number of threads (>= 1), starting or stopping workers. */
void soma_rt_set_threads(int threads);
int soma_rt_threads(void);

/* A built model: its serialized description (soma/Model.h) and its generated functions. `soma
   build` defines one in the program's object code. */
typedef struct soma_program {
  const char *model;
  int64_t model_size;
  void (*forward)(void *ctx);
  void (*train_step)(void *ctx); /* NULL without a train block */
} soma_program;

/* The command line of a built executable: train, eval, predict, --help. */
int soma_rt_main(const soma_program *program, int argc, char **argv);

/* The C library of a built model; `soma build --lib` wraps each in a function named after the
   model (digits_create, ...), declared in its header. Functions returning int give 0 on success
   and -1 on failure, with the message in soma_rt_error; on a NULL model they return -1 (the sizes
   too) and soma_rt_error(NULL) gives why the last soma_rt_create of this thread returned NULL. */
typedef struct soma_rt_model soma_rt_model;
soma_rt_model *soma_rt_create(const soma_program *program, int64_t max_batch);
void soma_rt_destroy(soma_rt_model *m);
const char *soma_rt_error(const soma_rt_model *m);
int64_t soma_rt_input_size(const soma_rt_model *m);
int64_t soma_rt_output_size(const soma_rt_model *m);
int soma_rt_init(soma_rt_model *m, uint64_t seed);
int soma_rt_load_weights(soma_rt_model *m, const char *path);
int soma_rt_save_weights(soma_rt_model *m, const char *path);
int soma_rt_predict(soma_rt_model *m, const float *x, int64_t n, float *out);
int soma_rt_train_step(soma_rt_model *m, const float *x, const float *labels, int64_t n, float lr, float *loss);
/* soma_rt_set_threads for a library: 0, or -1 for a count outside 1 to 256 (or threads the system
   would not start; then one thread is left). */
int soma_rt_lib_set_threads(int threads);

#ifdef __cplusplus
}
#endif
#endif
