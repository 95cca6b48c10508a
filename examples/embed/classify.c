/* Classifies handwritten digits with a model compiled by Soma into a C library.

   Build the library and train the weights, then compile and run this program:

     soma build --lib examples/mnist_mlp.soma -o build/embed
     soma run examples/mnist_mlp.soma --checkpoint digits.st
     cc -O2 -I build/embed examples/embed/classify.c build/embed/libdigits.a \
        -lstdc++ -lm -lmvec -lpthread -o classify
     ./classify digits.st data/mnist/t10k-images-idx3-ubyte data/mnist/t10k-labels-idx1-ubyte

   It prints the first digits' predicted classes, then the accuracy on the whole file. */
#include "digits.h"

#include <stdio.h>
#include <stdlib.h>

/* Reads an IDX file: a big-endian magic and dimensions, then unsigned bytes. */
static unsigned char *read_idx(const char *path, int rank, long *count, long *size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return NULL;
  }
  unsigned char header[16];
  long dims[3] = {1, 1, 1};
  if (fread(header, 4, 1 + rank, f) != (size_t)(1 + rank)) {
    fprintf(stderr, "%s: not an IDX file\n", path);
    fclose(f);
    return NULL;
  }
  for (int i = 0; i < rank; ++i) {
    const unsigned char *d = header + 4 + 4 * i;
    dims[i] = (long)d[0] << 24 | (long)d[1] << 16 | (long)d[2] << 8 | (long)d[3];
  }
  *count = dims[0];
  *size = dims[1] * dims[2];
  unsigned char *data = malloc((size_t)(*count * *size));
  if (!data || fread(data, 1, (size_t)(*count * *size), f) != (size_t)(*count * *size)) {
    fprintf(stderr, "%s: truncated\n", path);
    free(data);
    data = NULL;
  }
  fclose(f);
  return data;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s WEIGHTS IMAGES LABELS\n", argv[0]);
    return 2;
  }
  long count, size, labelCount, one;
  unsigned char *images = read_idx(argv[2], 3, &count, &size);
  unsigned char *labels = read_idx(argv[3], 1, &labelCount, &one);
  if (!images || !labels)
    return 1;
  if (size != DIGITS_INPUT_SIZE || labelCount != count) {
    fprintf(stderr, "%s: expected images of %d pixels, one label each\n", argv[2], DIGITS_INPUT_SIZE);
    return 1;
  }

  digits_model *model = digits_create(256);
  if (!model || digits_load_weights(model, argv[1]) != 0) {
    fprintf(stderr, "%s\n", model ? digits_error(model) : "out of memory");
    return 1;
  }
  float *x = malloc(sizeof(float) * (size_t)(count * size));
  float *out = malloc(sizeof(float) * (size_t)(count * DIGITS_OUTPUTS));
  for (long i = 0; i < count * size; ++i)
    x[i] = images[i] / 255.0f; /* as Soma's IDX loader scales them */
  if (digits_predict(model, x, count, out) != 0) {
    fprintf(stderr, "%s\n", digits_error(model));
    return 1;
  }
  long correct = 0;
  for (long i = 0; i < count; ++i) {
    const float *o = out + i * DIGITS_OUTPUTS;
    int best = 0;
    for (int c = 1; c < DIGITS_OUTPUTS; ++c)
      if (o[c] > o[best])
        best = c;
    correct += best == labels[i];
    if (i < 5)
      printf("digit %ld: class %d (label %d)\n", i, best, labels[i]);
  }
  printf("accuracy %.2f%% on %ld digits\n", 100.0 * (double)correct / (double)count, count);
  digits_destroy(model);
  free(x);
  free(out);
  free(images);
  free(labels);
  return 0;
}
