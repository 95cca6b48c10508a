// Binding of buffers to the slots of the generated code's context array.
#include "soma/Session.h"

#include "soma/Data.h"
#include "soma/Format.h"

#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>

namespace soma::rt {

FloatBuffer::FloatBuffer(size_t n) : n_(n) {
  if (n > (SIZE_MAX - 64) / sizeof(float))
    throw std::bad_alloc();
  size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
  p_.reset(static_cast<float *>(std::aligned_alloc(64, bytes ? bytes : 64)));
  if (!p_)
    throw std::bad_alloc();
  std::memset(p_.get(), 0, bytes);
}

std::string Session::create(const ModelInfo &m, Entries entries, int64_t maxBatch, std::unique_ptr<Session> &out) {
  // Every buffer of a batch is batch x (a tensor of at most 2^28 floats): a batch beyond 2^30
  // cannot be allocated anywhere, and keeps the sizes far from overflowing 64 bits.
  if (maxBatch < 1 || maxBatch > kMaxBatch)
    return format("a batch of {} samples is outside 1 to {}", maxBatch, kMaxBatch);
  try {
    out = std::make_unique<Session>(m, entries, maxBatch);
  } catch (const std::bad_alloc &) {
    std::vector<int64_t> offsets;
    int64_t perSample =
        m.sampleSize() + 1 + planArena(m.forward, 1, offsets) + (m.train ? planArena(*m.train, 1, offsets) : 0);
    return format("cannot allocate the buffers for a batch of {} samples (about {:.1f} GiB); use a smaller batch",
                  maxBatch, static_cast<double>(perSample) * static_cast<double>(maxBatch) * 4 / (1 << 30));
  }
  return "";
}

BoundFunction::BoundFunction(const FunctionLayout &f, EntryFn entry, int64_t maxBatch) : f_(f), entry_(entry) {
  std::vector<int64_t> offsets;
  arena_ = FloatBuffer(static_cast<size_t>(planArena(f, maxBatch, offsets)));
  ctx_.assign(1 + f.slots.size(), 0);
  for (size_t slot = 0; slot < offsets.size(); ++slot)
    if (offsets[slot] >= 0)
      ctx_[1 + slot] = reinterpret_cast<uint64_t>(arena_.data() + offsets[slot]);
}

void BoundFunction::bind(const std::string &input, float *data) {
  int64_t slot = f_.inputSlot(input);
  if (slot >= 0)
    ctx_[1 + static_cast<size_t>(slot)] = reinterpret_cast<uint64_t>(data);
}

const float *BoundFunction::result(const std::string &name) const {
  int64_t slot = f_.resultSlot(name);
  if (slot < 0)
    return nullptr;
  // The context is the generated code's ABI: an array of 64-bit words holding pointers.
  uint64_t word = ctx_[1 + static_cast<size_t>(slot)];
  return reinterpret_cast<const float *>(word); // NOLINT(performance-no-int-to-ptr)
}

void BoundFunction::run(int64_t batch) {
  ctx_[0] = static_cast<uint64_t>(batch);
  entry_(ctx_.data());
}

Session::Session(const ModelInfo &m, Entries entries, int64_t maxBatch)
    : m_(m), maxBatch_(maxBatch), forward_(m.forward, entries.forward, maxBatch) {
  x_ = FloatBuffer(static_cast<size_t>(maxBatch * m.sampleSize()));
  labels_ = FloatBuffer(static_cast<size_t>(maxBatch * m.labelSlots()));
  lr_ = FloatBuffer(1);
  invBatch_ = FloatBuffer(1);
  adamStepSize_ = FloatBuffer(1);
  adamInvSqrtBias2_ = FloatBuffer(1);
  dropoutSeed_ = FloatBuffer(1);
  if (entries.train && m.train)
    train_ = std::make_unique<BoundFunction>(*m.train, entries.train, maxBatch);
  for (const TensorInfo &p : m.params)
    params_.emplace_back(static_cast<size_t>(p.elements()));
  for (const TensorInfo &p : m.state)
    state_.emplace_back(static_cast<size_t>(p.elements()));
  for (const TensorInfo &p : m.buffers)
    buffers_.emplace_back(static_cast<size_t>(p.elements()));
  for (BoundFunction *f : {&forward_, train_.get()}) {
    if (!f)
      continue;
    f->bind(kInputX, x_.data());
    f->bind(kInputLabel, labels_.data());
    f->bind(kInputLr, lr_.data());
    f->bind(kInputInvBatch, invBatch_.data());
    f->bind(kInputAdamStepSize, adamStepSize_.data());
    f->bind(kInputAdamInvSqrtBias2, adamInvSqrtBias2_.data());
    f->bind(kInputDropoutSeed, dropoutSeed_.data());
    for (size_t i = 0; i < buffers_.size(); ++i)
      f->bind(m.buffers[i].name, buffers_[i].data());
    for (size_t i = 0; i < params_.size(); ++i)
      f->bind(m.params[i].name, params_[i].data());
    for (size_t i = 0; i < state_.size(); ++i)
      f->bind(m.state[i].name, state_[i].data());
  }
}

namespace {

std::vector<std::vector<float>> initialValues(const std::vector<TensorInfo> &list, Rng &rng) {
  std::vector<std::vector<float>> out;
  auto uniform = [&](double lo, double hi) { return lo + (hi - lo) * rng.uniform(); };
  auto normal = [&](double mean, double std) { // Box-Muller
    double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
    return mean + std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  };
  for (const TensorInfo &p : list) {
    double fanIn = static_cast<double>(p.fanIn), fanOut = static_cast<double>(p.fanOut);
    const InitSpec &init = p.init;
    std::vector<float> &v = out.emplace_back(static_cast<size_t>(p.elements()));
    for (float &x : v) {
      double r = 0;
      switch (init.kind) {
      case InitSpec::Kind::FanInUniform:
        r = (rng.uniform() * 2 - 1) / std::sqrt(fanIn);
        break;
      case InitSpec::Kind::Zeros:
        r = 0;
        break;
      case InitSpec::Kind::Ones:
        r = 1;
        break;
      case InitSpec::Kind::Constant:
        r = init.a;
        break;
      case InitSpec::Kind::Uniform:
        r = uniform(init.a, init.b);
        break;
      case InitSpec::Kind::Normal:
        r = normal(init.a, init.b);
        break;
      case InitSpec::Kind::GlorotUniform: {
        double bound = std::sqrt(6.0 / (fanIn + fanOut));
        r = uniform(-bound, bound);
        break;
      }
      case InitSpec::Kind::GlorotNormal:
        r = normal(0, std::sqrt(2.0 / (fanIn + fanOut)));
        break;
      case InitSpec::Kind::HeUniform: {
        double bound = std::sqrt(6.0 / fanIn);
        r = uniform(-bound, bound);
        break;
      }
      case InitSpec::Kind::HeNormal:
        r = normal(0, std::sqrt(2.0 / fanIn));
        break;
      }
      x = static_cast<float>(r);
    }
  }
  return out;
}

} // namespace

std::vector<std::vector<float>> initialValues(const std::vector<TensorInfo> &list, uint64_t seed) {
  Rng rng(seed);
  return initialValues(list, rng);
}

std::vector<FloatBuffer *> Session::weights() {
  std::vector<FloatBuffer *> w;
  for (std::vector<FloatBuffer> *list : {&params_, &buffers_})
    for (FloatBuffer &b : *list)
      w.push_back(&b);
  return w;
}

void Session::initParams(uint64_t seed) {
  std::vector<std::vector<float>> init = initialValues(m_.params, seed);
  for (size_t i = 0; i < params_.size(); ++i)
    std::copy(init[i].begin(), init[i].end(), params_[i].data());
  for (FloatBuffer &s : state_)
    std::fill_n(s.data(), s.size(), 0.0f);
  std::vector<std::vector<float>> buffers = initialValues(m_.buffers, 0); // constants: no draws
  for (size_t i = 0; i < buffers_.size(); ++i)
    std::copy(buffers[i].begin(), buffers[i].end(), buffers_[i].data());
  steps_ = 0;
  seed_ = seed;
}

float Session::trainStep(int64_t batch, float lr) {
  assert(train_ && batch <= maxBatch_);
  lr_[0] = lr;
  invBatch_[0] = 1.0f / static_cast<float>(batch);
  ++steps_;
  // A new dropout mask every step, exact in a float (below 2^24), different for every seed.
  dropoutSeed_[0] = static_cast<float>((steps_ + seed_ * 1000003u) % (1u << 24));
  if (m_.config) { // Adam's bias corrections, in double precision
    const OptimizerSpec &o = m_.config->optimizer;
    double t = static_cast<double>(steps_);
    adamStepSize_[0] = static_cast<float>(lr / (1 - std::pow(o.beta1, t)));
    adamInvSqrtBias2_[0] = static_cast<float>(1 / std::sqrt(1 - std::pow(o.beta2, t)));
  }
  train_->run(batch);
  return *train_->result("loss");
}

float Session::forward(int64_t batch) {
  assert(batch <= maxBatch_);
  invBatch_[0] = 1.0f / static_cast<float>(batch);
  forward_.run(batch);
  const float *loss = forward_.result("loss");
  return loss ? *loss : 0.0f;
}

} // namespace soma::rt
