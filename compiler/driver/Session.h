// A compiled model ready to run: parameters, batch buffers, one arena per function (planned
// once for the largest batch), and the context arrays the generated code reads. Nothing is
// allocated per step.
#pragma once
#include "driver/Pipeline.h"

#include <cstdlib>
#include <map>
#include <memory>
#include <vector>

namespace soma {

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

class BoundFunction {
public:
  BoundFunction(const ir::Function &f, const transforms::Schedule &s, void (*entry)(void *), int64_t maxBatch);
  void bind(const std::string &input, float *data);
  const float *result(const std::string &name) const;
  void run(int64_t batch);

private:
  const ir::Function &f_;
  const transforms::Schedule &s_;
  void (*entry_)(void *);
  FloatBuffer arena_;
  std::vector<uint64_t> ctx_;
};

// Each parameter's initializer (PyTorch's default for dense and convolution layers is
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), weights and biases), drawn from one generator in order.
std::vector<std::vector<float>> initialParams(const LoweredModel &m, uint64_t seed);
// The buffers' starting values (batchnorm: running mean 0, running variance 1).
std::vector<std::vector<float>> initialBuffers(const LoweredModel &m);

class Session {
public:
  Session(const CompiledModel &m, int64_t maxBatch);
  void initParams(uint64_t seed);

  int64_t maxBatch() const { return maxBatch_; }
  float *x() { return x_.data(); }
  float *labels() { return labels_.data(); }
  // Runs one training step on the first `batch` rows of x/labels; returns the loss.
  float trainStep(int64_t batch, float lr);
  // Optimizer steps taken so far (Adam's bias correction counts them).
  int64_t steps() const { return steps_; }
  void setSteps(int64_t n) { steps_ = n; }
  const CompiledModel &model() const { return m_; }
  // Forward pass; returns the mean loss (0 without a train block); outputs in output().
  float forward(int64_t batch);
  const float *output() const { return forward_.result("output"); }
  std::vector<FloatBuffer> &params() { return params_; }
  std::vector<FloatBuffer> &state() { return state_; }
  std::vector<FloatBuffer> &buffers() { return buffers_; }
  // The parameters, then the statistics: LoweredModel::weights()'s order.
  std::vector<FloatBuffer *> weights() {
    std::vector<FloatBuffer *> w;
    for (std::vector<FloatBuffer> *list : {&params_, &buffers_})
      for (FloatBuffer &b : *list)
        w.push_back(&b);
    return w;
  }

private:
  const CompiledModel &m_;
  int64_t maxBatch_;
  std::vector<FloatBuffer> params_, state_, buffers_;
  FloatBuffer x_, labels_, lr_, invBatch_, adamStepSize_, adamInvSqrtBias2_, dropoutSeed_;
  uint64_t seed_ = 1;
  int64_t steps_ = 0;
  BoundFunction forward_;
  std::unique_ptr<BoundFunction> train_;
};

} // namespace soma
