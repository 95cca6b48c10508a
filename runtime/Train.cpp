// The training loop. Each epoch: shuffle (seeded), run the fused step on each batch, check the
// loss is finite, then evaluate on the test data. Accuracy is argmax == label, or for a single
// output, round(output) == label.
#include "soma/Train.h"

#include "soma/File.h"
#include "soma/Format.h"
#include "soma/Random.h"
#include "soma/Safetensors.h"
#include "soma/runtime.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <thread>
#include <unistd.h>

namespace soma::rt {

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

// Images fit an input with the same dims, or with a leading channel axis of 1 ([1, 28, 28]).
bool fitsInput(const Dims &sample, const Dims &input) {
  return sample == input || (input.size() == sample.size() + 1 && input[0] == 1 &&
                             std::equal(sample.begin(), sample.end(), input.begin() + 1));
}

} // namespace

bool loadData(const DataSpec &spec, const ModelInfo &m, Dataset &d, std::vector<std::string> &classNames) {
  std::string error;
  int64_t classes = m.config ? m.config->classes : 0, labelSize = m.config ? m.config->labelSize : 1;
  switch (spec.kind) {
  case DataSpec::Kind::Idx:
    error = loadIdx(spec.images, spec.labels, d);
    break;
  case DataSpec::Kind::Npy:
    error = loadNpy(spec.images, spec.labels, d);
    break;
  case DataSpec::Kind::Csv: {
    CsvOptions o;
    o.header = spec.header;
    // An autoencoder's rows have no label: every column is a feature unless the file says so.
    o.labelled = labelSize > 0 || !spec.labelColumns.empty() || !spec.labelNames.empty();
    o.labelColumns = spec.labelColumns;
    o.labelNames = spec.labelNames;
    o.columns = spec.columns;
    o.columnNames = spec.columnNames;
    o.classNames = classes > 0 && labelSize == 1 ? &classNames : nullptr; // a regression's labels are numbers
    error = loadCsv(spec.images, o, d);
    break;
  }
  }
  const std::string &source = spec.images;
  if (error.empty() && labelSize == 0) { // no loss reads them
    d.labels.clear();
    d.labelSize = 0;
  }
  if (error.empty() && !fitsInput(d.sampleDims, m.inputDims) && d.sampleSize != 0) {
    std::string what = spec.kind == DataSpec::Kind::Idx ? "images" : "samples";
    error = rt::format("{}: error: {} have shape {} but model '{}' takes input '{}' of shape {}", source, what,
                       formatDims(d.sampleDims), m.name, m.inputName, formatDims(m.inputDims));
    if (spec.kind == DataSpec::Kind::Csv)
      error = rt::format("{}: error: rows have {} features but model '{}' takes input '{}' of shape {}", source,
                         d.sampleSize, m.name, m.inputName, formatDims(m.inputDims));
    if (m.inputName.find(", ") != std::string::npos) // several inputs share the features
      error = rt::format("{}: error: samples have {} features but model '{}' takes inputs '{}' with {} in all", source,
                         d.sampleSize, m.name, m.inputName, m.inputDims[0]);
  }
  const std::string &labelSource = spec.kind == DataSpec::Kind::Csv ? spec.images : spec.labels;
  auto values = [](int64_t n) { return n == 1 ? std::string("one value") : rt::format("{} values", n); };
  if (error.empty() && d.labelSize == 0 && labelSize > 0)
    error = rt::format("{}: error: model '{}' trains on labels ({} a sample), but the data has none; give the labels "
                       "file",
                       source, m.name, values(labelSize));
  else if (error.empty() && d.labelSize != labelSize)
    error = rt::format("{}: error: the labels have {} a sample, but model '{}' compares {} with them", labelSource,
                       values(d.labelSize), m.name,
                       labelSize == 1 ? "one value (a class or a number)" : rt::format("{} outputs", labelSize));
  if (error.empty() && !classNames.empty() && classes > 0 && static_cast<int64_t>(classNames.size()) != classes)
    error = rt::format("{}: error: the labels name {} classes but model '{}' has {} outputs", source, classNames.size(),
                       m.name, classes);
  if (error.empty() && classes > 0)
    error = checkClassLabels(d, classes, labelSource);
  if (!error.empty()) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return false;
  }
  return true;
}

namespace {

void gather(Session &s, const Dataset &d, const std::vector<int64_t> &order, int64_t from, int64_t n) {
  float *x = s.x(), *y = s.labels();
  for (int64_t r = 0; r < n; ++r) {
    int64_t i = order[from + r];
    std::copy_n(d.features.data() + i * d.sampleSize, d.sampleSize, x + r * d.sampleSize);
    std::copy_n(d.labels.data() + i * d.labelSize, d.labelSize, y + r * d.labelSize);
  }
}

struct EvalResult {
  double loss = 0, accuracy = 0, topK = 0;
  std::vector<int64_t> confusion; // k x k: rows the labels, columns the predictions
};

// Whether `label` is among the `topK` largest of the k outputs (ties counted against it).
bool inTopK(const float *out, int64_t k, int64_t label, int64_t topK) {
  int64_t above = 0;
  for (int64_t c = 0; c < k; ++c)
    above += c != label && out[c] >= out[label];
  return above < topK;
}

EvalResult evaluate(Session &s, const Dataset &d, int64_t k, int64_t topK) {
  std::vector<int64_t> order(d.count);
  for (int64_t i = 0; i < d.count; ++i)
    order[i] = i;
  EvalResult r;
  int64_t classes = std::max<int64_t>(k, 2);
  r.confusion.assign(static_cast<size_t>(classes * classes), 0);
  float threshold = s.model().threshold;
  int64_t correct = 0, inTop = 0;
  for (int64_t from = 0; from < d.count; from += s.maxBatch()) {
    int64_t n = std::min(s.maxBatch(), d.count - from);
    gather(s, d, order, from, n);
    r.loss += static_cast<double>(s.forward(n)) * static_cast<double>(n);
    const float *out = s.output();
    if (d.labelSize > 1 && d.labelSize == k) { // several labels a sample, each 0 or 1: per label
      for (int64_t j = 0; j < n * k; ++j)
        correct += (out[j] >= threshold) == (d.labels[from * k + j] >= 0.5f);
      continue;
    }
    for (int64_t i = 0; i < n && d.labelSize == 1; ++i) {
      int64_t label = static_cast<int64_t>(d.labels[from + i]), predicted = predictedClass(out + i * k, k, threshold);
      correct += predicted == label;
      if (topK > 0 && k > 1 && label >= 0 && label < k)
        inTop += inTopK(out + i * k, k, label, topK);
      if (label >= 0 && label < classes)
        ++r.confusion[static_cast<size_t>(label * classes + predicted)];
    }
  }
  r.loss /= static_cast<double>(d.count);
  r.accuracy = static_cast<double>(correct) / static_cast<double>(d.count * (d.labelSize > 1 ? d.labelSize : 1));
  r.topK = static_cast<double>(inTop) / static_cast<double>(d.count);
  return r;
}

void printConfusion(const EvalResult &r, const std::vector<std::string> &names, const char *what) {
  int64_t k = static_cast<int64_t>(std::sqrt(static_cast<double>(r.confusion.size())));
  auto name = [&](int64_t c) { return c < static_cast<int64_t>(names.size()) ? names[c] : std::to_string(c); };
  size_t width = 6;
  for (int64_t c = 0; c < k; ++c)
    width = std::max(width, name(c).size() + 1);
  std::printf("confusion matrix on the %s data (rows: labels, columns: predictions):\n%*s", what,
              static_cast<int>(width), "");
  for (int64_t c = 0; c < k; ++c)
    std::printf("%*s", static_cast<int>(width), name(c).c_str());
  std::printf("\n");
  for (int64_t row = 0; row < k; ++row) {
    std::printf("%*s", static_cast<int>(width), name(row).c_str());
    for (int64_t c = 0; c < k; ++c)
      std::printf("%*lld", static_cast<int>(width), (long long)r.confusion[static_cast<size_t>(row * k + c)]);
    std::printf("\n");
  }
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

void showPredictions(Session &s, const Dataset &d, int64_t count, int64_t k) {
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
          features += rt::format("{}{}", j ? ", " : "", d.features[(from + i) * d.sampleSize + j]);
      else
        features = rt::format("{} values", d.sampleSize);
      if (d.labelSize > 1) { // several labels: every output beside its label
        std::string outs, labels;
        for (int64_t j = 0; j < k; ++j)
          outs += rt::format("{}{:.4f}", j ? ", " : "", out[j]);
        for (int64_t j = 0; j < d.labelSize; ++j)
          labels += rt::format("{}{}", j ? ", " : "", d.labels[(from + i) * d.labelSize + j]);
        std::printf("predict [%s] -> [%s] (labels [%s])\n", features.c_str(), outs.c_str(), labels.c_str());
      } else if (k == 1)
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

int64_t predictedClass(const float *out, int64_t k, float threshold) {
  if (k == 1)
    return out[0] >= threshold ? 1 : 0;
  int64_t best = 0;
  for (int64_t c = 1; c < k; ++c)
    if (out[c] > out[best])
      best = c;
  return best;
}

void augmentImages(float *x, int64_t n, const Dims &input, const TrainConfig::Augment &a, uint64_t seed, int64_t step) {
  if (a.shift == 0 && !a.flip)
    return;
  int64_t h = input[input.size() - 2], w = input.back(), planes = input.size() == 3 ? input[0] : 1;
  static thread_local std::vector<float> plane; // scratch, allocated once, not every step
  plane.resize(static_cast<size_t>(h * w));
  uint32_t stream = static_cast<uint32_t>(seed * 2654435761u + static_cast<uint64_t>(step) * 40503u);
  for (int64_t r = 0; r < n; ++r) {
    auto draw = [&](uint32_t k) { return randomUniform(static_cast<uint32_t>(r), stream, k); };
    int64_t span = 2 * a.shift + 1;
    int64_t dy = a.shift ? std::min(span - 1, static_cast<int64_t>(draw(1) * static_cast<float>(span))) - a.shift : 0;
    int64_t dx = a.shift ? std::min(span - 1, static_cast<int64_t>(draw(2) * static_cast<float>(span))) - a.shift : 0;
    bool flip = a.flip && draw(3) < 0.5f;
    for (int64_t c = 0; c < planes; ++c) {
      float *img = x + (r * planes + c) * h * w;
      std::copy_n(img, h * w, plane.data());
      for (int64_t y = 0; y < h; ++y)
        for (int64_t col = 0; col < w; ++col) { // out(y, col) = in(y - dy, col - dx), then mirrored
          int64_t sy = y - dy, sx = (flip ? w - 1 - col : col) - dx;
          img[y * w + col] = sy >= 0 && sy < h && sx >= 0 && sx < w ? plane[static_cast<size_t>(sy * w + sx)] : 0.0f;
        }
    }
  }
}

// The learning rate of step `step` (0-based) of epoch `epoch` (1-based): the schedule's value for
// the epoch, times the linear warm-up's factor during the first warmupEpochs epochs.
double scheduledLr(const TrainConfig &t, const TrainingState &st, int64_t epoch, int64_t step, int64_t steps) {
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
void plateauStep(const TrainConfig &t, TrainingState &st, double metric) {
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

namespace {

// The data of a run: training (less a validation split), validation and test sets, standardized
// with the training set's statistics when asked. Returns false after printing an error.
struct RunData {
  Dataset train, validation, test;
  std::vector<std::string> classNames; // CSV labels that are names
  bool hasValidation = false, hasTest = false;
};

// Evaluation alone loads the training data too: it numbers the classes, and the split and the
// standardization are made from it.
bool loadRunData(const ModelInfo &p, const TrainConfig &t, RunData &d, Dataset *alsoStandardize = nullptr) {
  d.hasTest = t.test.has_value();
  d.hasValidation = t.validation > 0;
  if (!loadData(*t.train, p, d.train, d.classNames))
    return false;
  if (d.hasTest && !loadData(*t.test, p, d.test, d.classNames))
    return false;
  if (d.hasValidation) {
    splitOff(d.train, t.validation, t.seed ^ 0x7a11da7eull, d.validation);
    if (d.validation.count == 0 || d.train.count == 0) {
      std::fprintf(stderr, "%s: error: validation = %g of %lld samples leaves %s empty\n", t.train->images.c_str(),
                   t.validation, static_cast<long long>(d.train.count) + d.validation.count,
                   d.validation.count == 0 ? "the validation set" : "the training set");
      return false;
    }
  }
  if (t.standardize) {
    Standardizer z;
    z.fit(d.train);
    for (Dataset *set : {&d.train, &d.validation, &d.test, alsoStandardize})
      if (set && set->count)
        z.apply(*set);
  }
  return true;
}

// --profile: each kernel of the training step, most time first, with its arithmetic rate.
void printProfile(const FunctionLayout &f, const std::vector<double> &seconds, int64_t steps, int64_t samples,
                  int threads) {
  double total = 0, flops = 0;
  double meanBatch = static_cast<double>(samples) / static_cast<double>(steps);
  std::vector<size_t> order(seconds.size());
  for (size_t k = 0; k < seconds.size(); ++k) {
    order[k] = k;
    total += seconds[k];
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return seconds[a] > seconds[b]; });
  std::printf("profile of the training step: %lld steps, %.3f ms per step in %zu kernels, %d thread%s\n",
              (long long)steps, 1e3 * total / static_cast<double>(steps), seconds.size(), threads,
              threads == 1 ? "" : "s");
  std::printf("%6s %-24s %-18s %10s %7s %9s\n", "kernel", "strategy", "shape", "us/step", "share", "GFLOP/s");
  size_t shown = 0;
  for (size_t k : order) {
    const FunctionLayout::Kernel &kn = f.kernels[k];
    double perStep = seconds[k] / static_cast<double>(steps);
    double work = kn.flopsFixed + kn.flopsPerSample * static_cast<double>(std::llround(meanBatch));
    flops += work;
    if (shown++ < 15)
      std::printf("%6zu %-24s %-18s %10.1f %6.1f%% %9.2f\n", k, kn.kind.c_str(), kn.shape.c_str(), 1e6 * perStep,
                  total > 0 ? 100 * seconds[k] / total : 0.0, perStep > 0 ? work / perStep / 1e9 : 0.0);
  }
  if (order.size() > 15)
    std::printf("  (%zu more kernels)\n", order.size() - 15);
  double perStep = total / static_cast<double>(steps);
  std::printf("all kernels: %.2f GFLOP/s (about %.2f MFLOP per step)\n", perStep > 0 ? flops / perStep / 1e9 : 0.0,
              flops / 1e6);
}

// --data NAME=PATH: the file of the train or test set (IDX and .npy: IMAGES,LABELS, or IMAGES
// alone when no loss reads the labels).
std::string applyDataFlags(const std::vector<std::pair<std::string, std::string>> &data, TrainConfig &t) {
  for (const auto &[name, path] : data) {
    std::optional<DataSpec> &set = name == "train" ? t.train : t.test;
    if (!set) { // a test set the file does not name: in the training set's format
      set = t.train;
      set->name = name;
    }
    set->images = path;
    set->labels.clear();
    if (set->kind != DataSpec::Kind::Csv && t.labelSize == 0 && path.find(',') == std::string::npos)
      continue; // no loss reads labels: the features alone
    if (set->kind != DataSpec::Kind::Csv) {
      size_t comma = path.find(',');
      if (comma == std::string::npos || comma == 0 || comma + 1 == path.size())
        return rt::format("error: --data {}={}: {} data needs two files, {}=IMAGES,LABELS", name, path,
                          set->kind == DataSpec::Kind::Idx ? "IDX" : ".npy", name);
      set->images = path.substr(0, comma);
      set->labels = path.substr(comma + 1);
    }
  }
  return "";
}

// Early stopping's bookkeeping: whether an evaluation improved on the best so far.
bool improves(const TrainConfig::EarlyStop &e, const TrainingState &st, double value) {
  if (!st.stopSeen)
    return true;
  return e.onAccuracy ? value > st.stopBest + e.minDelta : value < st.stopBest - e.minDelta;
}

} // namespace

int runTraining(const ModelInfo &m, Entries entries, const RunOptions &opts) {
  if (!m.config || !m.train || !entries.train) {
    std::fprintf(stderr, "soma: error: model '%s' has no train block to run\n", m.name.c_str());
    return 1;
  }
  TrainConfig t = *m.config;
  if (std::string e = applyDataFlags(opts.data, t); !e.empty()) {
    std::fprintf(stderr, "%s\n", e.c_str());
    return 2;
  }
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

  // A checkpoint replaces only a regular file: say so now, not after the first epoch.
  if (!checkpoint.empty())
    if (std::string why = replaceableFile(checkpoint); !why.empty()) {
      std::fprintf(stderr, "%s: error: %s\n", checkpoint.c_str(), why.c_str());
      return 1;
    }
  std::FILE *metrics = nullptr;
  if (!opts.metricsPath.empty() && !opts.evalOnly) {
    metrics = std::fopen(opts.metricsPath.c_str(), "w");
    if (!metrics) {
      std::fprintf(stderr, "%s: error: cannot write metrics file: %s\n", opts.metricsPath.c_str(),
                   std::strerror(errno));
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

  RunData data;
  if (!loadRunData(m, t, data))
    return 1;
  Dataset &train = data.train, &test = data.test, &validation = data.validation;
  bool hasTest = data.hasTest, hasValidation = data.hasValidation;
  int64_t k = m.outputs;
  // A batch holds no more than the data set it runs on: the training set, or for evaluation
  // alone the largest set.
  int64_t largest = std::max({train.count, hasTest ? test.count : 0, hasValidation ? validation.count : 0});
  t.batch = std::min(t.batch, opts.evalOnly ? largest : train.count);
  std::unique_ptr<Session> session;
  if (std::string e = Session::create(m, entries, t.batch, session); !e.empty()) {
    std::fprintf(stderr, "soma: error: %s\n", e.c_str());
    return 1;
  }
  Session &s = *session;
  s.initParams(t.seed);
  Rng rng(t.seed ^ 0x5eed5eedull);
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

  // The data that decides (early stopping, plateau, the confusion matrix): validation, else test.
  const Dataset *judge = hasValidation ? &validation : hasTest ? &test : nullptr;
  const char *judgeName = hasValidation ? "validation" : "test";
  auto describe = [&](const char *what, const EvalResult &ev) {
    if (!t.accuracy) // the target is a value of the model: the loss is the measure
      return rt::format("{} loss {:.4f}", what, ev.loss);
    std::string line = rt::format("{} loss {:.4f}, {} accuracy {:.2f}%", what, ev.loss, what, ev.accuracy * 100);
    if (t.topK > 0)
      line += rt::format(", {} top-{} accuracy {:.2f}%", what, t.topK, ev.topK * 100);
    return line;
  };

  if (opts.evalOnly) {
    const Dataset &d = hasTest ? test : hasValidation ? validation : train;
    const char *what = hasTest ? "test" : hasValidation ? "validation" : "train";
    EvalResult ev = evaluate(s, d, k, t.topK);
    std::printf("model %s: %s on %lld samples\n", m.name.c_str(), describe(what, ev).c_str(), (long long)d.count);
    if (t.confusionMatrix)
      printConfusion(ev, data.classNames, what);
    if (t.showPredictions > 0)
      showPredictions(s, d, t.showPredictions, k);
    return 0;
  }

  std::string sets = rt::format("{} training samples", train.count);
  if (hasValidation)
    sets += rt::format(", {} validation samples", validation.count);
  if (hasTest)
    sets += rt::format(", {} test samples", test.count);
  std::string compiled = opts.jitMs >= 0 ? rt::format("; JIT {:.0f} ms", opts.jitMs) : std::string();
  std::printf("model %s: %s, batch %lld, %d thread%s%s\n", m.name.c_str(), sets.c_str(), (long long)t.batch, threads,
              threads == 1 ? "" : "s", compiled.c_str());
  if (!opts.resumePath.empty())
    std::printf("resuming from %s after epoch %lld\n", opts.resumePath.c_str(), (long long)state.epoch);
  if (state.epoch >= t.epochs)
    std::printf("nothing to train: the checkpoint has %lld epoch%s, and epochs is %lld (raise --epochs to train on)\n",
                (long long)state.epoch, state.epoch == 1 ? "" : "s", (long long)t.epochs);
  bool tty = opts.progress && isatty(2);
  int64_t steps = (train.count + t.batch - 1) / t.batch;
  std::vector<int64_t> &order = state.order;
  std::vector<double> kernelSeconds(opts.profile ? m.train->kernels.size() : 0, 0.0);
  int64_t profiledSamples = 0, profiledSteps = 0;
  EvalResult lastJudged;
  for (int64_t epoch = state.epoch + 1; epoch <= t.epochs; ++epoch) {
    rng.shuffle(order);
    auto start = Clock::now();
    double lossSum = 0, lastLr = t.lr;
    double stepSeconds = 0; // time in the step itself, for samples/s
    auto lastDraw = start;
    for (int64_t step = 0; step < steps; ++step) {
      int64_t from = step * t.batch, n = std::min(t.batch, train.count - from);
      gather(s, train, order, from, n);
      augmentImages(s.x(), n, m.inputDims, t.augment, t.seed, s.steps());
      auto before = Clock::now();
      lastLr = scheduledLr(t, state, epoch, step, steps);
      if (opts.profile) {
        soma_rt_profile_set(kernelSeconds.data(), static_cast<int64_t>(kernelSeconds.size()));
        profiledSamples += n;
        ++profiledSteps;
      }
      float loss = s.trainStep(n, static_cast<float>(lastLr));
      if (opts.profile)
        soma_rt_profile_set(nullptr, 0); // evaluation is not profiled
      stepSeconds += seconds(before);
      if (!std::isfinite(loss)) {
        if (tty)
          std::fprintf(stderr, "\n");
        std::fprintf(stderr,
                     "%s: error: the loss became %s at epoch %lld, step %lld; the learning rate %g may be too "
                     "large\n",
                     m.name.c_str(), std::isnan(loss) ? "nan" : "infinite", (long long)epoch, (long long)step + 1,
                     lastLr);
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
    std::string line = rt::format("epoch {}/{}: train loss {:.4f}", epoch, t.epochs, trainLoss);
    std::string json = rt::format("{{\"epoch\": {}, \"train_loss\": {}", epoch, trainLoss);
    bool evaluating = epoch % t.evalEvery == 0 || epoch == t.epochs;
    EvalResult ev, val;
    if (evaluating && hasValidation) {
      val = evaluate(s, validation, k, t.topK);
      line += ", " + describe("validation", val);
      json += rt::format(", \"validation_loss\": {}", val.loss);
      if (t.accuracy)
        json += rt::format(", \"validation_accuracy\": {}", val.accuracy);
    }
    if (evaluating && hasTest) {
      ev = evaluate(s, test, k, t.topK);
      line += ", " + describe("test", ev);
      json += rt::format(", \"test_loss\": {}", ev.loss);
      if (t.accuracy)
        json += rt::format(", \"test_accuracy\": {}", ev.accuracy);
      if (t.topK > 0)
        json += rt::format(", \"test_top{}_accuracy\": {}", t.topK, ev.topK);
    }
    bool varies = t.schedule.kind != ScheduleSpec::Kind::Constant || t.warmupEpochs > 0;
    if (varies)
      line += rt::format(", lr {:.3g}", lastLr);
    line += rt::format(" ({:.2f} s, {:.0f} samples/s)", epochSeconds, rate);
    json += rt::format(", \"lr\": {}", lastLr);
    json += rt::format(", \"samples_per_second\": {:.1f}, \"seconds\": {:.4f}, \"jit_ms\": {:.2f}, \"threads\": {}}}\n",
                       rate, epochSeconds, std::max(opts.jitMs, 0.0), threads);
    // Long runs (XOR trains for thousands of tiny epochs) print about 20 lines; the metrics
    // file still gets every epoch.
    int64_t every = std::max<int64_t>(1, t.epochs / 20);
    if (epoch == 1 || epoch == t.epochs || epoch % every == 0 || (evaluating && t.evalEvery > 1)) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
    if (metrics && (std::fputs(json.c_str(), metrics) < 0 || std::fflush(metrics) != 0))
      return fail(rt::format("{}: error: cannot write metrics: {}", opts.metricsPath, std::strerror(errno)));
    bool stop = false;
    if (evaluating) {
      const EvalResult &judged = hasValidation ? val : ev;
      lastJudged = judged;
      plateauStep(t, state, judge ? judged.loss : trainLoss);
      const TrainConfig::EarlyStop &es = t.earlyStop;
      if (es.enabled) {
        double value = !judge ? trainLoss : es.onAccuracy ? judged.accuracy : judged.loss;
        if (improves(es, state, value)) {
          state.stopBest = value;
          state.stopSeen = true;
          state.stopBad = 0;
          state.bestEpoch = epoch;
          if (es.restoreBest) { // copies outside the training step
            state.best.clear();
            for (FloatBuffer *b : s.weights())
              state.best.emplace_back(b->data(), b->data() + b->size());
          }
        } else if (++state.stopBad > es.patience) {
          std::string bestText =
              es.onAccuracy ? rt::format("{:.2f}%", state.stopBest * 100) : rt::format("{:.4f}", state.stopBest);
          std::printf("early stopping after epoch %lld: no better %s %s for %lld evaluations (best %s at epoch %lld)\n",
                      (long long)epoch, judge ? judgeName : "train", es.onAccuracy ? "accuracy" : "loss",
                      (long long)es.patience, bestText.c_str(), (long long)state.bestEpoch);
          stop = true;
        }
      }
    }
    state.epoch = epoch;
    if (!checkpoint.empty())
      if (std::string e = saveCheckpoint(checkpoint, s, state); !e.empty())
        return fail(e);
    if (stop)
      break;
  }
  if (opts.profile && profiledSteps > 0)
    printProfile(*m.train, kernelSeconds, profiledSteps, profiledSamples, threads);
  if (!checkpoint.empty())
    std::printf("checkpoint after epoch %lld: %s\n", (long long)state.epoch, checkpoint.c_str());
  if (!state.best.empty() && state.bestEpoch != state.epoch) {
    std::vector<FloatBuffer *> weights = s.weights();
    for (size_t i = 0; i < weights.size(); ++i)
      std::copy(state.best[i].begin(), state.best[i].end(), weights[i]->data());
    std::printf("restored the weights of epoch %lld, the best on the %s data\n", (long long)state.bestEpoch,
                judge ? judgeName : "train");
    if (judge)
      lastJudged = evaluate(s, *judge, k, t.topK);
  }
  if (t.confusionMatrix && judge)
    printConfusion(lastJudged.confusion.empty() ? evaluate(s, *judge, k, t.topK) : lastJudged, data.classNames,
                   judgeName);
  if (t.showPredictions > 0)
    showPredictions(s, hasTest ? test : train, t.showPredictions, k);
  if (metrics) {
    std::FILE *f = metrics;
    metrics = nullptr;
    if (std::fclose(f) != 0)
      return fail(rt::format("{}: error: cannot write metrics: {}", opts.metricsPath, std::strerror(errno)));
  }
  return 0;
}

namespace {

// NumPy's .npy format, version 1.0, little-endian float32, written to PATH.tmp then renamed.
std::string writeNpy(const std::string &path, const float *data, const Dims &shape) {
  std::string dims;
  int64_t n = 1;
  for (int64_t d : shape) {
    dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    n *= d;
  }
  if (shape.size() == 1)
    dims += ","; // a tuple of one
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  return writeFileAtomically(path, {{out.data(), out.size()}, {data, static_cast<size_t>(n) * sizeof(float)}});
}

// A probability for the chosen class: outputs in [0, 1] (softmax, sigmoid) are read as they
// are; others are logits, turned into probabilities by softmax (one output: by sigmoid).
double classProbability(const float *out, int64_t k, int64_t c, float threshold) {
  if (k == 1) {
    double p = threshold == 0.0f ? 1 / (1 + std::exp(-static_cast<double>(out[0]))) : out[0];
    return c == 1 ? p : 1 - p;
  }
  bool unit = true;
  for (int64_t i = 0; i < k; ++i)
    unit &= out[i] >= 0 && out[i] <= 1;
  if (unit)
    return out[c];
  double z = 0;
  for (int64_t i = 0; i < k; ++i)
    z += std::exp(static_cast<double>(out[i] - out[c]));
  return 1 / z;
}

} // namespace

int runPredict(const ModelInfo &model, Entries entries, const PredictOptions &opts) {
  ModelInfo m = model;
  if (m.config && !opts.data.empty())
    if (std::string e = applyDataFlags(opts.data, *m.config); !e.empty()) {
      std::fprintf(stderr, "%s\n", e.c_str());
      return 2;
    }
  int threads = opts.threads > 0 ? opts.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  soma_rt_set_threads(threads);
  // The samples: by the file's extension, in the training data's format otherwise.
  const std::string &path = opts.input;
  auto endsWith = [&](const char *ext) {
    size_t n = std::strlen(ext);
    return path.size() >= n && path.compare(path.size() - n, n, ext) == 0;
  };
  const std::optional<DataSpec> &trainSpec = m.config ? m.config->train : std::nullopt;
  bool csv = endsWith(".csv") || (!endsWith(".npy") && trainSpec && trainSpec->kind == DataSpec::Kind::Csv);
  Dataset d;
  std::string error;
  if (endsWith(".npy")) {
    error = loadNpy(path, "", d);
  } else if (csv) {
    CsvOptions o;
    o.labelled = false;
    if (trainSpec && trainSpec->kind == DataSpec::Kind::Csv) { // the training file's feature columns
      o.header = trainSpec->header;
      o.labelNames = trainSpec->labelNames;
      o.columns = trainSpec->columns;
      o.columnNames = trainSpec->columnNames;
    }
    error = loadCsv(path, o, d);
    // Rows that hold the labels too, in the training file's label columns: skip them.
    int64_t labelColumns = 0;
    if (trainSpec && trainSpec->kind == DataSpec::Kind::Csv && trainSpec->columns.empty() &&
        trainSpec->columnNames.empty() && trainSpec->labelNames.empty())
      labelColumns = !trainSpec->labelColumns.empty()      ? static_cast<int64_t>(trainSpec->labelColumns.size())
                     : m.config && m.config->labelSize > 0 ? 1
                                                           : 0;
    if (error.empty() && labelColumns > 0 && d.sampleSize == m.sampleSize() + labelColumns) {
      std::vector<std::string> names;
      o.labelled = true;
      o.labelColumns = trainSpec->labelColumns;
      o.classNames = labelColumns == 1 ? &names : nullptr;
      error = loadCsv(path, o, d);
    }
  } else {
    error = loadIdx(path, "", d);
  }
  if (error.empty() && !fitsInput(d.sampleDims, m.inputDims) && d.sampleSize != m.sampleSize())
    error = rt::format("{}: error: samples have shape {} but model '{}' takes input '{}' of shape {}", path,
                       formatDims(d.sampleDims), m.name, m.inputName, formatDims(m.inputDims));
  if (!error.empty()) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  // The training data's statistics when the model standardizes its inputs; its class names.
  std::vector<std::string> classNames;
  if (m.config && m.config->standardize) {
    RunData data;
    if (!loadRunData(m, *m.config, data, &d)) {
      std::fprintf(stderr,
                   "%s: error: the model standardizes its inputs with the training data's statistics; "
                   "give the training data with --data train=PATH\n",
                   m.name.c_str());
      return 1;
    }
    classNames = data.classNames;
  }
  int64_t batch = std::min<int64_t>(opts.batch, d.count);
  std::unique_ptr<Session> session;
  if (std::string e = Session::create(m, entries, std::max<int64_t>(batch, 1), session); !e.empty()) {
    std::fprintf(stderr, "soma: error: %s\n", e.c_str());
    return 1;
  }
  Session &s = *session;
  if (std::string e = loadWeights(opts.weightsPath, s); !e.empty()) {
    std::fprintf(stderr, "%s\n", e.c_str());
    return 1;
  }
  int64_t k = m.outputs;
  std::vector<float> outputs(static_cast<size_t>(d.count * k));
  for (int64_t from = 0; from < d.count; from += batch) {
    int64_t n = std::min(batch, d.count - from);
    std::copy_n(d.features.data() + from * d.sampleSize, n * d.sampleSize, s.x());
    s.forward(n);
    std::copy_n(s.output(), n * k, outputs.data() + from * k);
  }
  if (!opts.outputPath.empty()) {
    Dims shape = {d.count};
    shape.insert(shape.end(), m.outputDims.begin(), m.outputDims.end());
    if (std::string e = writeNpy(opts.outputPath, outputs.data(), shape); !e.empty()) {
      std::fprintf(stderr, "%s\n", e.c_str());
      return 1;
    }
    std::printf("%lld predictions of model %s written to %s\n", (long long)d.count, m.name.c_str(),
                opts.outputPath.c_str());
    return 0;
  }
  if (m.config && (!m.config->accuracy || m.config->labelSize > 1)) { // not one class: the outputs, as numbers
    for (int64_t i = 0; i < d.count; ++i) {
      std::string line = std::to_string(i) + ":";
      for (int64_t j = 0; j < k; ++j)
        line += rt::format(" {:.6g}", outputs[static_cast<size_t>(i * k + j)]);
      std::printf("%s\n", line.c_str());
    }
    return 0;
  }
  for (int64_t i = 0; i < d.count; ++i) {
    const float *out = outputs.data() + i * k;
    int64_t c = predictedClass(out, k, m.threshold);
    std::string name = c < static_cast<int64_t>(classNames.size()) ? " (" + classNames[c] + ")" : "";
    std::printf("%lld: class %lld%s, probability %.4f\n", (long long)i, (long long)c, name.c_str(),
                classProbability(out, k, c, m.threshold));
  }
  return 0;
}

const char *kRunFlagsHelp = R"(  --epochs N           number of epochs
  --batch N            mini-batch size
  --lr X               learning rate
  --seed N             seed for initialization and shuffling
  --threads N          worker threads (default: all cores)
  --data NAME=PATH     the train or test data from PATH instead of the model file's
                       (IDX and .npy: NAME=IMAGES,LABELS)
  --metrics FILE       write one JSON object per epoch to FILE
  --checkpoint FILE    save weights, optimizer state, epoch and generator state after every epoch
                       (safetensors; written to FILE.tmp, then renamed over FILE)
  --resume FILE        continue from a checkpoint exactly where it stopped
  --weights FILE       start from the weights in FILE (a checkpoint or any safetensors file)
  --no-progress        no progress bar
  --profile            after training, time per kernel of the training step and its GFLOP/s
)";

int parseRunFlag(const std::vector<std::string> &args, size_t &i, RunOptions &opts, const char *program) {
  const std::string &a = args[i];
  std::string v;
  auto value = [&] {
    if (i + 1 >= args.size())
      return false;
    v = args[++i];
    return true;
  };
  auto bad = [&](const std::string &msg) {
    std::fprintf(stderr, "%s: error: %s\n(run '%s --help' for usage)\n", program, msg.c_str(), program);
    return -1;
  };
  auto intFlag = [&](std::optional<int64_t> &slot, int64_t min, int64_t max) {
    int64_t n;
    if (!value() || !parseNumber(v, n) || n < min || n > max)
      return bad(rt::format("{} needs an integer from {} to {}{}", a, min, max, v.empty() ? "" : ", got '" + v + "'"));
    slot = n;
    return 1;
  };
  if (a == "--epochs")
    return intFlag(opts.epochs, 1, int64_t(1) << 40);
  if (a == "--batch")
    return intFlag(opts.batch, 1, int64_t(1) << 30);
  if (a == "--seed")
    return intFlag(opts.seed, 0, INT64_MAX);
  if (a == "--threads") {
    std::optional<int64_t> t;
    int r = intFlag(t, 1, kMaxThreads);
    if (r > 0)
      opts.threads = static_cast<int>(*t);
    return r;
  }
  if (a == "--lr") {
    double x;
    // The rate is a float in the generated code: it must not round to 0 or to infinity there.
    if (!value() || !parseNumber(v, x) || !(x >= std::numeric_limits<float>::min()) ||
        !(x <= std::numeric_limits<float>::max()))
      return bad(rt::format("{} needs a positive number from 1.2e-38 to 3.4e38 (a float's range){}", a,
                            v.empty() ? "" : ", got '" + v + "'"));
    opts.lr = x;
    return 1;
  }
  if (a == "--data") {
    size_t eq = std::string::npos;
    if (value())
      eq = v.find('=');
    std::string name = eq == std::string::npos ? "" : v.substr(0, eq);
    if ((name != "train" && name != "test") || eq + 1 >= v.size())
      return bad("--data needs NAME=PATH with NAME train or test" + (v.empty() ? "" : ", got '" + v + "'"));
    opts.data.push_back({name, v.substr(eq + 1)});
    return 1;
  }
  if (a == "--metrics" || a == "--checkpoint" || a == "--resume" || a == "--weights") {
    std::string &slot = a == "--metrics"      ? opts.metricsPath
                        : a == "--checkpoint" ? opts.checkpointPath
                        : a == "--resume"     ? opts.resumePath
                                              : opts.weightsPath;
    if (!value() || v.empty())
      return bad(a + " needs a file name");
    slot = v;
    return 1;
  }
  if (a == "--no-progress") {
    opts.progress = false;
    return 1;
  }
  if (a == "--profile") {
    opts.profile = true;
    return 1;
  }
  return 0;
}

std::string checkRunOptions(const RunOptions &opts) {
  if (!opts.resumePath.empty() && !opts.weightsPath.empty())
    return "--resume and --weights cannot be combined: a checkpoint holds its own weights";
  if (opts.evalOnly && opts.resumePath.empty() && opts.weightsPath.empty())
    return "--eval-only needs --weights FILE (or --resume FILE) to evaluate";
  return "";
}

} // namespace soma::rt
