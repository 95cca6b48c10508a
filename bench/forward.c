/* W4: the forward pass of a model built with `soma build --lib` (prefix digits), timed at batch 1
   (microseconds per call) and batch 256 (samples per second), on the weights given.
   Usage: forward WEIGHTS THREADS */
#include "digits.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The best of several timed rounds of `calls` predictions of n samples: seconds per call. */
static double timeBatch(digits_model *m, const float *x, float *out, int n, int calls) {
  double best = 1e30;
  for (int round = 0; round < 7; ++round) {
    double start = now();
    for (int c = 0; c < calls; ++c)
      digits_predict(m, x, n, out);
    double t = (now() - start) / calls;
    if (t < best)
      best = t;
  }
  return best;
}

int main(int argc, char **argv) {
  if (argc != 3)
    return 2;
  digits_set_threads(atoi(argv[2]));
  digits_model *m = digits_create(256);
  if (!m || digits_load_weights(m, argv[1]) != 0) {
    fprintf(stderr, "%s\n", m ? digits_error(m) : "out of memory");
    return 1;
  }
  float *x = malloc(sizeof(float) * 256 * DIGITS_INPUT_SIZE), *out = malloc(sizeof(float) * 256 * DIGITS_OUTPUTS);
  for (int i = 0; i < 256 * DIGITS_INPUT_SIZE; ++i)
    x[i] = (float)((i * 37) % 256) / 255.0f;
  timeBatch(m, x, out, 1, 1000); /* warm up */
  double one = timeBatch(m, x, out, 1, 20000);
  double many = timeBatch(m, x, out, 256, 200);
  printf("%.3f %.1f\n", one * 1e6, 256.0 / many);
  digits_destroy(m);
  return 0;
}
