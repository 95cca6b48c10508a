/* The C library of tests/lit/Inputs/tiny.soma: training steps lower the loss, saved weights load
   into a second instance and predict the same outputs, and bad calls fail with a message. */
#include "tiny.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define N 12

int main(int argc, char **argv) {
  if (argc != 2)
    return 2;
  float x[N * TINY_INPUT_SIZE], labels[N], out1[N * TINY_OUTPUTS], out2[N * TINY_OUTPUTS];
  for (int i = 0; i < N * TINY_INPUT_SIZE; ++i)
    x[i] = (float)((i * 37) % 256) / 255.0f;
  for (int i = 0; i < N; ++i)
    labels[i] = (float)(i % 3);
  tiny_set_threads(2);
  tiny_model *a = tiny_create(4), *b = tiny_create(4);
  if (!a || !b || tiny_init(a, 7) != 0)
    return 1;
  float first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    float loss;
    if (tiny_train_step(a, x + (step % 3) * 4 * TINY_INPUT_SIZE, labels + (step % 3) * 4, 4, 0.1f, &loss) != 0) {
      printf("train_step: %s\n", tiny_error(a));
      return 1;
    }
    if (step < 3)
      first += loss;
    if (step >= 297)
      last += loss;
  }
  printf("loss %s\n", last < first / 2 ? "falls" : "does not fall");
  if (tiny_save_weights(a, argv[1]) != 0 || tiny_load_weights(b, argv[1]) != 0) {
    printf("weights: %s%s\n", tiny_error(a), tiny_error(b));
    return 1;
  }
  tiny_predict(a, x, N, out1); /* 12 samples in batches of 4 */
  tiny_predict(b, x, N, out2);
  printf("predictions %s\n", memcmp(out1, out2, sizeof out1) == 0 ? "match" : "differ");
  labels[0] = 7;
  if (tiny_train_step(a, x, labels, 4, 0.1f, NULL) != 0)
    printf("%s\n", tiny_error(a));
  if (tiny_train_step(a, x, labels, 5, 0.1f, NULL) != 0)
    printf("%s\n", tiny_error(a));
  if (tiny_load_weights(a, "no-such-file.st") != 0)
    printf("%s\n", tiny_error(a));
  /* Hostile calls: errors, never a crash. */
  labels[0] = 0;
  if (tiny_train_step(a, x, labels, 4, NAN, NULL) != 0)
    printf("%s\n", tiny_error(a));
  if (tiny_train_step(a, x, labels, 4, 0.0f, NULL) != 0)
    printf("%s\n", tiny_error(a));
  if (!tiny_create(INT64_MAX))
    printf("%s\n", tiny_error(NULL));
  if (!tiny_create(0))
    printf("%s\n", tiny_error(NULL));
  printf("set_threads(100000) = %d, set_threads(0) = %d, set_threads(1) = %d\n", tiny_set_threads(100000),
         tiny_set_threads(0), tiny_set_threads(1));
  printf("NULL model: %d %d %d %d %d %d\n", tiny_init(NULL, 1), tiny_load_weights(NULL, argv[1]),
         tiny_save_weights(NULL, argv[1]), tiny_predict(NULL, x, 1, out1),
         tiny_train_step(NULL, x, labels, 1, 0.1f, NULL), tiny_load_weights(a, NULL));
  printf("%s\n", tiny_error(a));
  tiny_destroy(a);
  tiny_destroy(b);
  tiny_destroy(NULL);
  return 0;
}
