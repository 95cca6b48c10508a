// The training loop. Each epoch: shuffle (seeded), run the fused step on each batch, check the
// loss is finite, then evaluate on the test data. Accuracy is argmax == label, or for a single
// output, round(output) == label.
#include "driver/Train.h"

#include "driver/Checkpoint.h"
#include "driver/Session.h"
#include "interp/Interp.h"
#include "autodiff/Autodiff.h"
#include "soma/Data.h"
#include "soma/runtime.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <fmt/format.h>
#include <fstream>
#include <thread>
#include <unistd.h>

namespace soma {

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

// Images fit an input with the same dims, or with a leading channel axis of 1 ([1, 28, 28]).
bool fitsInput(const Dims &sample, const Dims &input) {
  return sample == input || (input.size() == sample.size() + 1 && input[0] == 1 &&
                             std::equal(sample.begin(), sample.end(), input.begin() + 1));
}

bool loadData(const DataSpec &spec, const Program &p, rt::Dataset &d) {
  std::string error = spec.kind == DataSpec::Kind::Idx ? rt::loadIdx(spec.images, spec.labels, d)
                                                        : rt::loadCsv(spec.images, spec.labelColumn, spec.header, d);
  std::string source = spec.kind == DataSpec::Kind::Idx ? spec.images : spec.images;
  if (error.empty() && !fitsInput(d.sampleDims, p.model.inputDims) && d.sampleSize != 0) {
    std::string what = spec.kind == DataSpec::Kind::Idx ? "images" : "rows";
    error = fmt::format("{}: error: {} have shape {} but model '{}' takes input '{}' of shape {}", source, what,
                        formatDims(d.sampleDims), p.model.name, p.model.inputName, formatDims(p.model.inputDims));
    if (spec.kind == DataSpec::Kind::Csv)
      error = fmt::format("{}: error: rows have {} features but model '{}' takes input '{}' of shape {}", source,
                          d.sampleSize, p.model.name, p.model.inputName, formatDims(p.model.inputDims));
  }
  const TrainSpec &t = *p.train;
  if (error.empty() && t.classes > 0)
    error = rt::checkClassLabels(d, t.classes, spec.kind == DataSpec::Kind::Idx ? spec.labels : spec.images);
  if (!error.empty()) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return false;
  }
  return true;
}

void gather(Session &s, const rt::Dataset &d, const std::vector<int64_t> &order, int64_t from, int64_t n) {
  float *x = s.x(), *y = s.labels();
  for (int64_t r = 0; r < n; ++r) {
    int64_t i = order[from + r];
    std::copy_n(d.features.data() + i * d.sampleSize, d.sampleSize, x + r * d.sampleSize);
    y[r] = d.labels[i];
  }
}

struct EvalResult {
  double loss = 0, accuracy = 0;
};

// A single output is a probability, or a logit when binary cross-entropy reads it directly.
float decisionThreshold(const Program &p) {
  bool logit = p.train && p.train->loss == LossKind::BinaryCrossEntropy && !p.model.outputIs(LayerKind::Sigmoid);
  return logit ? 0.0f : 0.5f;
}

int64_t predictedClass(const float *out, int64_t k, float threshold) {
  if (k == 1)
    return out[0] >= threshold ? 1 : 0;
  int64_t best = 0;
  for (int64_t c = 1; c < k; ++c)
    if (out[c] > out[best])
      best = c;
  return best;
}

EvalResult evaluate(Session &s, const rt::Dataset &d, int64_t k) {
  std::vector<int64_t> order(d.count);
  for (int64_t i = 0; i < d.count; ++i)
    order[i] = i;
  EvalResult r;
  float threshold = decisionThreshold(s.model().program);
  int64_t correct = 0;
  for (int64_t from = 0; from < d.count; from += s.maxBatch()) {
    int64_t n = std::min(s.maxBatch(), d.count - from);
    gather(s, d, order, from, n);
    r.loss += static_cast<double>(s.forward(n)) * static_cast<double>(n);
    const float *out = s.output();
    for (int64_t i = 0; i < n; ++i)
      correct += predictedClass(out + i * k, k, threshold) == static_cast<int64_t>(d.labels[from + i]);
  }
  r.loss /= static_cast<double>(d.count);
  r.accuracy = static_cast<double>(correct) / static_cast<double>(d.count);
  return r;
}

void progressBar(int64_t epoch, int64_t epochs, int64_t step, int64_t steps, double loss, double rate, double eta) {
  int width = 24, filled = static_cast<int>(width * step / std::max<int64_t>(steps, 1));
  std::string bar(filled, '=');
  if (filled < width)
    bar += '>' + std::string(width - filled - 1, ' ');
  std::fprintf(stderr, "\repoch %lld/%lld [%s] %lld/%lld loss %.4f %.0f samples/s ETA %.1fs ", (long long)epoch,
               (long long)epochs, bar.c_str(), (long long)step, (long long)steps, loss, rate, eta);
  std::fflush(stderr);
}

void showPredictions(Session &s, const rt::Dataset &d, int64_t count, int64_t k) {
  count = std::min(count, d.count);
  std::vector<int64_t> order(count);
  for (int64_t i = 0; i < count; ++i)
    order[i] = i;
  for (int64_t from = 0; from < count; from += s.maxBatch()) {
    int64_t n = std::min(s.maxBatch(), count - from);
    std::vector<int64_t> part(order.begin() + from, order.begin() + from + n);
    gather(s, d, part, 0, n);
    s.forward(n);
    for (int64_t i = 0; i < n; ++i) {
      const float *out = s.output() + i * k;
      std::string features;
      if (d.sampleSize <= 8)
        for (int64_t j = 0; j < d.sampleSize; ++j)
          features += fmt::format("{}{}", j ? ", " : "", d.features[(from + i) * d.sampleSize + j]);
      else
        features = fmt::format("{} values", d.sampleSize);
      if (k == 1)
        std::printf("predict [%s] -> %.4f (label %g)\n", features.c_str(), out[0], d.labels[from + i]);
      else {
        int64_t c = predictedClass(out, k, 0.5f);
        std::printf("predict [%s] -> class %lld, %.4f (label %g)\n", features.c_str(), (long long)c, out[c],
                    d.labels[from + i]);
      }
    }
  }
}

} // namespace

// The learning rate of step `step` (0-based) of epoch `epoch` (1-based): the schedule's value for
// the epoch, times the linear warm-up's factor during the first warmupEpochs epochs.
double scheduledLr(const TrainSpec &t, const TrainingState &st, int64_t epoch, int64_t step, int64_t steps) {
  const ScheduleSpec &s = t.schedule;
  double e = static_cast<double>(epoch - 1), lr = t.lr;
  switch (s.kind) {
  case ScheduleSpec::Kind::Constant:
    break;
  case ScheduleSpec::Kind::Step:
    lr *= std::pow(s.gamma, std::floor(e / static_cast<double>(s.every)));
    break;
  case ScheduleSpec::Kind::MultiStep:
    for (int64_t m : s.milestones)
      if (m <= epoch - 1)
        lr *= s.gamma;
    break;
  case ScheduleSpec::Kind::Exponential:
    lr *= std::pow(s.gamma, e);
    break;
  case ScheduleSpec::Kind::Cosine: { // over the epochs after the warm-up
    double span = static_cast<double>(std::max<int64_t>(1, t.epochs - t.warmupEpochs));
    double j = std::max(0.0, e - static_cast<double>(t.warmupEpochs));
    lr = s.minLr + (t.lr - s.minLr) * (1 + std::cos(M_PI * j / span)) / 2;
    break;
  }
  case ScheduleSpec::Kind::Plateau:
    lr = std::max(s.minLr, t.lr * st.plateauScale);
    break;
  }
  if (epoch <= t.warmupEpochs)
    lr *= static_cast<double>((epoch - 1) * steps + step + 1) / static_cast<double>(t.warmupEpochs * steps);
  return lr;
}

// After an epoch: reduce-on-plateau as PyTorch's ReduceLROnPlateau (mode min, relative threshold
// 1e-4, no cooldown).
void plateauStep(const TrainSpec &t, TrainingState &st, double metric) {
  if (t.schedule.kind != ScheduleSpec::Kind::Plateau)
    return;
  if (!st.plateauSeen || metric < st.plateauBest * (1 - 1e-4)) {
    st.plateauBest = metric;
    st.plateauBad = 0;
    st.plateauSeen = true;
    return;
  }
  if (++st.plateauBad > t.schedule.patience) {
    st.plateauScale *= t.schedule.factor;
    st.plateauBad = 0;
  }
}

int runTraining(CompiledModel &m, const RunOptions &opts) {
  const Program &p = m.program;
  if (!p.train) {
    std::fprintf(stderr, "soma: error: model '%s' has no train block to run\n", p.model.name.c_str());
    return 1;
  }
  TrainSpec t = *p.train;
  if (opts.epochs)
    t.epochs = *opts.epochs;
  if (opts.batch)
    t.batch = *opts.batch;
  if (opts.seed)
    t.seed = static_cast<uint64_t>(*opts.seed);
  if (opts.lr)
    t.lr = *opts.lr;
  std::string checkpoint = opts.checkpointPath.empty() ? t.checkpoint : opts.checkpointPath;
  int threads = opts.threads > 0 ? opts.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  soma_rt_set_threads(threads);

  std::FILE *metrics = nullptr;
  if (!opts.metricsPath.empty() && !opts.evalOnly) {
    metrics = std::fopen(opts.metricsPath.c_str(), "w");
    if (!metrics) {
      std::fprintf(stderr, "%s: error: cannot write metrics file: %s\n", opts.metricsPath.c_str(), std::strerror(errno));
      return 1;
    }
  }
  struct CloseMetrics {
    std::FILE *&f;
    ~CloseMetrics() {
      if (f)
        std::fclose(f);
    }
  } closeMetrics{metrics};

  rt::Dataset train, test;
  bool hasTest = t.test.has_value();
  if (opts.evalOnly) { // evaluation needs only the data it evaluates on
    if (!loadData(hasTest ? *t.test : *t.train, p, hasTest ? test : train))
      return 1;
  } else if (!loadData(*t.train, p, train) || (hasTest && !loadData(*t.test, p, test))) {
    return 1;
  }
  int64_t k = m.lowered.outputs;
  if (!opts.evalOnly)
    t.batch = std::min(t.batch, train.count); // a batch can hold no more than the data set
  Session s(m, t.batch);
  s.initParams(t.seed);
  rt::Rng rng(t.seed ^ 0x5eed5eedull);
  TrainingState state;
  state.rng = &rng;
  state.order.resize(static_cast<size_t>(train.count));
  for (int64_t i = 0; i < train.count; ++i)
    state.order[static_cast<size_t>(i)] = i;
  auto fail = [](const std::string &error) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  };
  if (!opts.weightsPath.empty())
    if (std::string e = loadWeights(opts.weightsPath, s); !e.empty())
      return fail(e);
  if (!opts.resumePath.empty())
    if (std::string e = loadCheckpoint(opts.resumePath, s, state); !e.empty())
      return fail(e);

  if (opts.evalOnly) {
    const rt::Dataset &d = hasTest ? test : train;
    EvalResult ev = evaluate(s, d, k);
    std::printf("model %s: %s loss %.4f, %s accuracy %.2f%% on %lld samples\n", p.model.name.c_str(),
                hasTest ? "test" : "train", ev.loss, hasTest ? "test" : "train", ev.accuracy * 100, (long long)d.count);
    if (t.showPredictions > 0)
      showPredictions(s, d, t.showPredictions, k);
    return 0;
  }


  std::printf("model %s: %lld training samples, %lld test samples, batch %lld, %d thread%s; JIT %.0f ms\n",
              p.model.name.c_str(), (long long)train.count, (long long)test.count, (long long)t.batch, threads,
              threads == 1 ? "" : "s", m.jitMs);
  if (!opts.resumePath.empty())
    std::printf("resuming from %s after epoch %lld\n", opts.resumePath.c_str(), (long long)state.epoch);
  bool tty = opts.progress && isatty(2);
  int64_t steps = (train.count + t.batch - 1) / t.batch;
  std::vector<int64_t> &order = state.order;
  for (int64_t epoch = state.epoch + 1; epoch <= t.epochs; ++epoch) {
    rng.shuffle(order);
    auto start = Clock::now();
    double lossSum = 0, lastLr = t.lr;
    double stepSeconds = 0; // time in the step itself, for samples/s
    auto lastDraw = start;
    for (int64_t step = 0; step < steps; ++step) {
      int64_t from = step * t.batch, n = std::min(t.batch, train.count - from);
      gather(s, train, order, from, n);
      auto before = Clock::now();
      lastLr = scheduledLr(t, state, epoch, step, steps);
      float loss = s.trainStep(n, static_cast<float>(lastLr));
      stepSeconds += seconds(before);
      if (!std::isfinite(loss)) {
        if (tty)
          std::fprintf(stderr, "\n");
        std::fprintf(stderr,
                     "%s: error: the loss became %s at epoch %lld, step %lld; the learning rate %g may be too "
                     "large\n",
                     p.model.name.c_str(), std::isnan(loss) ? "nan" : "infinite", (long long)epoch,
                     (long long)step + 1, lastLr);
        return 1;
      }
      lossSum += static_cast<double>(loss) * static_cast<double>(n);
      if (tty && (seconds(lastDraw) > 0.1 || step + 1 == steps)) { // ten redraws a second at most
        lastDraw = Clock::now();
        double el = seconds(start);
        double rate = static_cast<double>(from + n) / std::max(el, 1e-9);
        progressBar(epoch, t.epochs, step + 1, steps, lossSum / static_cast<double>(from + n), rate,
                    el / static_cast<double>(step + 1) * static_cast<double>(steps - step - 1));
      }
    }
    double epochSeconds = seconds(start);
    if (tty)
      std::fprintf(stderr, "\r\033[K");
    double trainLoss = lossSum / static_cast<double>(train.count);
    double rate = static_cast<double>(train.count) / std::max(stepSeconds, 1e-9);
    std::string line = fmt::format("epoch {}/{}: train loss {:.4f}", epoch, t.epochs, trainLoss);
    EvalResult ev;
    if (hasTest) {
      ev = evaluate(s, test, k);
      line += fmt::format(", test loss {:.4f}, test accuracy {:.2f}%", ev.loss, ev.accuracy * 100);
    }
    bool varies = t.schedule.kind != ScheduleSpec::Kind::Constant || t.warmupEpochs > 0;
    if (varies)
      line += fmt::format(", lr {:.3g}", lastLr);
    line += fmt::format(" ({:.2f} s, {:.0f} samples/s)", epochSeconds, rate);
    // Long runs (XOR trains for thousands of tiny epochs) print about 20 lines; the metrics
    // file still gets every epoch.
    int64_t every = std::max<int64_t>(1, t.epochs / 20);
    if (epoch == 1 || epoch == t.epochs || epoch % every == 0) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
    if (metrics) {
      std::string json = fmt::format("{{\"epoch\": {}, \"train_loss\": {:.6g}", epoch, trainLoss);
      if (hasTest)
        json += fmt::format(", \"test_loss\": {:.6g}, \"test_accuracy\": {:.6g}", ev.loss, ev.accuracy);
      json += fmt::format(", \"lr\": {:.6g}", lastLr);
      json += fmt::format(", \"samples_per_second\": {:.1f}, \"seconds\": {:.4f}, \"jit_ms\": {:.2f}, \"threads\": {}}}\n",
                          rate, epochSeconds, m.jitMs, threads);
      std::fputs(json.c_str(), metrics);
      std::fflush(metrics);
    }
    plateauStep(t, state, hasTest ? ev.loss : trainLoss);
    state.epoch = epoch;
    if (!checkpoint.empty())
      if (std::string e = saveCheckpoint(checkpoint, s, state); !e.empty())
        return fail(e);
  }
  if (!checkpoint.empty())
    std::printf("checkpoint after epoch %lld: %s\n", (long long)state.epoch, checkpoint.c_str());
  if (t.showPredictions > 0)
    showPredictions(s, hasTest ? test : train, t.showPredictions, k);
  return 0;
}

int gradCheck(CompiledModel &m, double tolerance) {
  const Program &p = m.program;
  if (!p.train) {
    std::fprintf(stderr, "soma: error: model '%s' has no train block: gradcheck needs its loss\n",
                 p.model.name.c_str());
    return 1;
  }
  rt::Dataset data;
  if (!loadData(*p.train->train, p, data))
    return 1;
  // The loss and its derived gradients, both in the reference evaluator.
  ir::Function f = m.lowered.forward;
  int loss = f.results.back().value;
  std::vector<int> params;
  for (const ParamInfo &pi : m.lowered.params)
    params.push_back(f.findInput(pi.name));
  std::vector<int> grads = autodiff::appendGradients(f, loss, params);
  f.results = {{"loss", loss}};
  for (size_t i = 0; i < grads.size(); ++i)
    f.results.push_back({m.lowered.params[i].name, grads[i]});

  int64_t batch = std::min<int64_t>(4, data.count);
  std::vector<std::vector<float>> init = initialParams(m.lowered, p.train->seed);
  std::map<std::string, interp::Tensor> inputs;
  auto tensor = [](const float *v, size_t n) {
    interp::Tensor t;
    t.data.assign(v, v + n);
    return t;
  };
  inputs[kInputX] = tensor(data.features.data(), static_cast<size_t>(batch * data.sampleSize));
  inputs[kInputLabel] = tensor(data.labels.data(), static_cast<size_t>(batch));
  inputs[kInputInvBatch].data = {1.0 / static_cast<double>(batch)};
  for (size_t i = 0; i < params.size(); ++i)
    inputs[m.lowered.params[i].name] = tensor(init[i].data(), init[i].size());
  std::map<std::string, interp::Tensor> derived = interp::run(f, inputs, batch);
  ir::Function lossOnly = f;
  lossOnly.results = {{"loss", loss}};

  bool ok = true;
  rt::Rng rng(7);
  std::printf("%-16s %10s %14s\n", "parameter", "checked", "worst rel err");
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string &name = m.lowered.params[i].name;
    interp::Tensor &w = inputs[name];
    double worst = 0;
    int64_t checks = std::min<int64_t>(24, static_cast<int64_t>(w.data.size()));
    for (int64_t c = 0; c < checks; ++c) {
      size_t j = checks == static_cast<int64_t>(w.data.size()) ? static_cast<size_t>(c) : rng.below(w.data.size());
      double saved = w.data[j], h = 1e-6 * std::max(1.0, std::fabs(saved));
      w.data[j] = saved + h;
      double up = interp::run(lossOnly, inputs, batch)["loss"].data[0];
      w.data[j] = saved - h;
      double down = interp::run(lossOnly, inputs, batch)["loss"].data[0];
      w.data[j] = saved;
      double numeric = (up - down) / (2 * h), analytic = derived[name].data[j];
      double err = std::fabs(numeric - analytic) / std::max(1e-6, std::fabs(numeric) + std::fabs(analytic));
      worst = std::max(worst, err);
    }
    bool pass = worst <= tolerance;
    ok &= pass;
    std::printf("%-16s %10lld %14.3e%s\n", name.c_str(), (long long)checks, worst, pass ? "" : "  FAIL");
  }
  std::printf("%s: gradients %s (tolerance %g)\n", p.model.name.c_str(), ok ? "match" : "DO NOT match", tolerance);
  return ok ? 0 : 1;
}

} // namespace soma
