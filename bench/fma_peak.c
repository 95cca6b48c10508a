/* The machine's measured single-precision FMA peak on one core: 12 independent chains of
   16-lane (or 8-lane) fused multiply-adds, enough to cover the FMA latency on two ports.
   Prints GFLOP/s (2 flops per lane per FMA). Compiled by bench/run with -O3 -march=native (at -O2 GCC keeps
   the accumulators in memory and measures a third of the peak). */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void) {
#ifdef __AVX512F__
  typedef __m512 vec;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define SUM(v) _mm512_reduce_add_ps(v)
#else
  typedef __m256 vec;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
  float lanes[8];
#define SUM(v) (_mm256_storeu_ps(lanes, v), lanes[0])
#endif
  vec a = SET1(0.999999f), b = SET1(1e-7f);
  vec acc[12];
  for (int i = 0; i < 12; ++i)
    acc[i] = SET1((float)i);
  double best = 0;
  for (int round = 0; round < 5; ++round) {
    long iterations = 20000000;
    double start = now();
    for (long n = 0; n < iterations; ++n)
      for (int i = 0; i < 12; ++i)
        acc[i] = FMA(acc[i], a, b);
    double seconds = now() - start;
    double gflops = 2.0 * LANES * 12 * (double)iterations / seconds / 1e9;
    if (gflops > best)
      best = gflops;
  }
  vec total = acc[0];
  for (int i = 1; i < 12; ++i)
    total = ADD(total, acc[i]);
  printf("%.1f\n", best);
  fprintf(stderr, "(checksum %g, %d lanes)\n", (double)SUM(total), LANES);
  return 0;
}
