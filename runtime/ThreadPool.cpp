// The runtime's thread pool. Workers spin briefly on a generation counter (a training step
// launches kernels every few microseconds) and then sleep on a condition variable, so an idle
// pool costs nothing. A kernel's rows are cut into a few chunks per thread, which the calling
// thread and the workers claim in turn: a worker that wakes late, or a core the machine gives
// to something else for a while, delays the kernel by one chunk at most, not by half of it.
// Each row is computed by one thread with the same code whichever it is, so results do not
// depend on who claims what.
#include "soma/runtime.h"
#include <chrono>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#define SOMA_PAUSE() _mm_pause()
#else
#define SOMA_PAUSE() ((void)0)
#endif

namespace {

constexpr int64_t kMinParallelWork = 1 << 15; // multiply-adds; below this a split costs more than it saves

class ThreadPool {
public:
  ~ThreadPool() { resize(1); }

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    if (n < 1)
      n = 1;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      generation_.fetch_add(1);
    }
    cv_.notify_all();
    for (std::thread &t : workers_)
      t.join();
    workers_.clear();
    stop_ = false;
    // The generation is read here, not in the new thread: a thread that starts late must
    // still see a later stop or task as new.
    uint64_t start = generation_.load();
    for (int i = 1; i < n; ++i)
      workers_.emplace_back([this, start] { work(start); });
  }

  void run(soma_kernel_fn fn, void *ctx, int64_t rows) {
    int64_t chunks = std::min<int64_t>(rows, 2 * threads());
    uint64_t task;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = fn;
      ctx_ = ctx;
      rows_ = rows;
      done_.store(0, std::memory_order_relaxed);
      task = ++task_ & kTaskMask;
      // The ticket names the task, its chunk count and the next chunk to claim, in one word that
      // a worker reads whole; publishing it hands out the work.
      ticket_.store(task << 40 | static_cast<uint64_t>(chunks) << 20, std::memory_order_release);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    claimChunks(task);
    while (done_.load(std::memory_order_acquire) != chunks)
      SOMA_PAUSE();
  }

private:
  static constexpr uint64_t kTaskMask = (uint64_t{1} << 24) - 1, kField = (uint64_t{1} << 20) - 1;

  // Claims chunks of task `task` until none is left (or another task began); runs each.
  void claimChunks(uint64_t task) {
    uint64_t t = ticket_.load(std::memory_order_acquire);
    for (;;) {
      int64_t next = static_cast<int64_t>(t & kField), chunks = static_cast<int64_t>(t >> 20 & kField);
      if (t >> 40 != task || next >= chunks)
        return;
      if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire))
        continue; // t now holds the current ticket
      // The claimed chunk is not done, so the task (fn_, ctx_, rows_) cannot change under us.
      int64_t lo = rows_ * next / chunks, hi = rows_ * (next + 1) / chunks;
      if (lo < hi)
        fn_(ctx_, lo, hi);
      done_.fetch_add(1, std::memory_order_release);
      t = ticket_.load(std::memory_order_acquire);
    }
  }

  void work(uint64_t seen) {
    for (;;) {
      int spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen && spins < 20000) {
        SOMA_PAUSE();
        ++spins;
      }
      if (generation_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return generation_.load() != seen; });
      }
      seen = generation_.load(std::memory_order_acquire);
      if (stop_)
        return;
      claimChunks(ticket_.load(std::memory_order_acquire) >> 40);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> ticket_{0}; // task << 40 | chunks << 20 | the next chunk
  std::atomic<int64_t> done_{0};    // chunks of the current task finished
  uint64_t task_ = 0;
  bool stop_ = false;
  soma_kernel_fn fn_ = nullptr;
  void *ctx_ = nullptr;
  int64_t rows_ = 0;
};

ThreadPool &pool() {
  static ThreadPool p;
  return p;
}

} // namespace

namespace {
// --profile: the host thread alone calls parallel_for, so plain variables suffice.
double *profileSeconds = nullptr;
int64_t profileCount = 0, profileIndex = 0;
int loopDepth = 0; // inside a loop, its body's kernels are the loop's time
std::chrono::steady_clock::time_point loopStart;

void record(std::chrono::steady_clock::time_point start) {
  if (profileIndex < profileCount)
    profileSeconds[profileIndex] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ++profileIndex;
}

void runKernel(soma_kernel_fn fn, void *ctx, int64_t rows, int64_t cost_per_row) {
  ThreadPool &p = pool();
  if (p.threads() == 1 || rows < 2 || rows * cost_per_row < kMinParallelWork) {
    fn(ctx, 0, rows);
    return;
  }
  p.run(fn, ctx, rows);
}
} // namespace

extern "C" void soma_rt_parallel_for(soma_kernel_fn fn, void *ctx, int64_t rows, int64_t cost_per_row) {
  if (!profileSeconds || loopDepth > 0) {
    runKernel(fn, ctx, rows, cost_per_row);
    return;
  }
  auto start = std::chrono::steady_clock::now();
  runKernel(fn, ctx, rows, cost_per_row);
  record(start);
}

extern "C" void soma_rt_loop_begin(void) {
  if (loopDepth++ == 0 && profileSeconds)
    loopStart = std::chrono::steady_clock::now();
}

extern "C" void soma_rt_loop_end(void) {
  if (--loopDepth == 0 && profileSeconds)
    record(loopStart);
}

extern "C" void soma_rt_profile_set(double *seconds, int64_t count) {
  profileSeconds = seconds;
  profileCount = count;
  profileIndex = 0;
}

extern "C" void soma_rt_profile_reset(void) { profileIndex = 0; }

extern "C" void soma_rt_set_threads(int threads) { pool().resize(threads); }
extern "C" int soma_rt_threads(void) { return pool().threads(); }
