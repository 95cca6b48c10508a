// A compiled model ready to run: parameters, batch buffers, one arena per function (planned
// once for the largest batch), and the context arrays the generated code reads. Nothing is
// allocated per step. The same class runs JIT-compiled code (`soma run`) and the code linked
// into a built program.
#pragma once
#include "soma/Model.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace soma::rt {

// 64-byte aligned floats (zero-filled).
class FloatBuffer {
public:
  FloatBuffer() = default;
  explicit FloatBuffer(size_t n);
  float *data() { return p_.get(); }
  const float *data() const { return p_.get(); }
  size_t size() const { return n_; }
  float &operator[](size_t i) { return p_[i]; }
  float operator[](size_t i) const { return p_[i]; }

private:
  struct Free {
    void operator()(float *p) const { std::free(p); }
  };
  std::unique_ptr<float[], Free> p_;
  size_t n_ = 0;
};

using EntryFn = void (*)(void *ctx);

// The generated functions of a model.
struct Entries {
  EntryFn forward = nullptr;
  EntryFn train = nullptr; // with a train block
};

class BoundFunction {
public:
  BoundFunction(const FunctionLayout &f, EntryFn entry, int64_t maxBatch);
  void bind(const std::string &input, float *data);
  const float *result(const std::string &name) const;
  void run(int64_t batch);

private:
  const FunctionLayout &f_;
  EntryFn entry_;
  FloatBuffer arena_;
  std::vector<uint64_t> ctx_;
};

// Each tensor's initializer, drawn from one generator seeded with `seed`, in order.
std::vector<std::vector<float>> initialValues(const std::vector<TensorInfo> &list, uint64_t seed);

class Session {
public:
  // Throws std::bad_alloc when the buffers cannot be allocated; create() says so instead.
  Session(const ModelInfo &m, Entries entries, int64_t maxBatch);
  // The largest batch a session takes.
  static constexpr int64_t kMaxBatch = int64_t{1} << 30;
  // A session in `out`, or the reason there is none: a batch outside 1 to kMaxBatch, or not
  // enough memory for its buffers.
  static std::string create(const ModelInfo &m, Entries entries, int64_t maxBatch, std::unique_ptr<Session> &out);
  // Parameters from their initializers, optimizer state zero, statistics at their start.
  void initParams(uint64_t seed);

  int64_t maxBatch() const { return maxBatch_; }
  float *x() { return x_.data(); }
  float *labels() { return labels_.data(); }
  // Runs one training step on the first `batch` rows of x/labels; returns the loss.
  float trainStep(int64_t batch, float lr);
  // Optimizer steps taken so far (Adam's bias correction counts them).
  int64_t steps() const { return steps_; }
  void setSteps(int64_t n) { steps_ = n; }
  const ModelInfo &model() const { return m_; }
  // Forward pass; returns the mean loss (0 without a train block); outputs in output().
  float forward(int64_t batch);
  const float *output() const { return forward_.result("output"); }
  std::vector<FloatBuffer> &params() { return params_; }
  std::vector<FloatBuffer> &state() { return state_; }
  std::vector<FloatBuffer> &buffers() { return buffers_; }
  // The parameters, then the statistics: ModelInfo::weights()'s order.
  std::vector<FloatBuffer *> weights();

private:
  const ModelInfo &m_;
  int64_t maxBatch_;
  std::vector<FloatBuffer> params_, state_, buffers_;
  FloatBuffer x_, labels_, lr_, invBatch_, adamStepSize_, adamInvSqrtBias2_, dropoutSeed_;
  uint64_t seed_ = 1;
  int64_t steps_ = 0;
  BoundFunction forward_;
  std::unique_ptr<BoundFunction> train_;
};

} // namespace soma::rt
