// `soma gradcheck`: finite differences against the derived gradients, in double precision, in
// the reference evaluator, on the first samples of the model's training data.
#include "driver/GradCheck.h"

#include "autodiff/Autodiff.h"
#include "interp/Interp.h"
#include "soma/Train.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace soma {

int gradCheck(CompiledModel &m, double tolerance) {
  const Program &p = m.program;
  if (!p.train) {
    std::fprintf(stderr, "soma: error: model '%s' has no train block: gradcheck needs its loss\n",
                 p.model.name.c_str());
    return 1;
  }
  rt::Dataset data;
  std::vector<std::string> classNames;
  if (!rt::loadData(*p.train->train, m.info, data, classNames))
    return 1;
  // The loss as training computes it (dropout with a fixed mask, batchnorm on the batch's
  // statistics) and its derived gradients, both in the reference evaluator.
  LoweredModel lowered = m.lowered;
  ir::Function f = lowerTrainingForward(lowered, p);
  int loss = -1;
  for (const ir::Result &r : f.results)
    if (r.name == "loss")
      loss = r.value;
  std::vector<int> params;
  for (const ParamInfo &pi : m.lowered.params)
    params.push_back(f.findInput(pi.name));
  std::vector<int> grads = autodiff::appendGradients(f, loss, params);
  f.results = {{"loss", loss}};
  for (size_t i = 0; i < grads.size(); ++i)
    f.results.push_back({m.lowered.params[i].name, grads[i]});

  int64_t batch = std::min<int64_t>(4, data.count);
  std::vector<std::vector<float>> init = rt::initialValues(m.info.params, p.train->seed);
  std::map<std::string, interp::Tensor> inputs;
  auto tensor = [](const float *v, size_t n) {
    interp::Tensor t;
    t.data.assign(v, v + n);
    return t;
  };
  inputs[kInputX] = tensor(data.features.data(), static_cast<size_t>(batch * data.sampleSize));
  std::vector<float> labels(static_cast<size_t>(batch * m.info.labelSlots()), 0.0f); // none: zeros
  std::copy_n(data.labels.begin(), std::min(labels.size(), data.labels.size()), labels.begin());
  inputs[kInputLabel] = tensor(labels.data(), labels.size());
  inputs[kInputInvBatch].data = {1.0 / static_cast<double>(batch)};
  inputs[kInputDropoutSeed].data = {12345};
  for (size_t i = 0; i < params.size(); ++i)
    inputs[m.lowered.params[i].name] = tensor(init[i].data(), init[i].size());
  std::vector<std::vector<float>> buffers = rt::initialValues(m.info.buffers, 0);
  for (size_t i = 0; i < buffers.size(); ++i)
    inputs[m.lowered.buffers[i].name] = tensor(buffers[i].data(), buffers[i].size());
  std::map<std::string, interp::Tensor> derived = interp::run(f, inputs, batch);
  ir::Function lossOnly = f;
  lossOnly.results = {{"loss", loss}};

  bool ok = true;
  rt::Rng rng(7);
  int width = 16; // the names' column: as wide as the longest (gru_1.w_ih_reverse)
  for (const auto &param : m.lowered.params)
    width = std::max(width, static_cast<int>(param.name.size()));
  std::printf("%-*s %10s %14s\n", width, "parameter", "checked", "worst rel err");
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string &name = m.lowered.params[i].name;
    const interp::Tensor &w = inputs[name];
    double worst = 0;
    int64_t checks = std::min<int64_t>(24, static_cast<int64_t>(w.data.size()));
    for (int64_t c = 0; c < checks; ++c) {
      size_t j = checks == static_cast<int64_t>(w.data.size()) ? static_cast<size_t>(c) : rng.below(w.data.size());
      double numeric = interp::centralDifference(lossOnly, inputs, batch, name, j), analytic = derived[name].data[j];
      // Relative error, with an absolute floor: a gradient that is zero in exact arithmetic (a bias
      // before batchnorm) comes out of the differences as rounding noise of about 1e-8.
      double err = std::fabs(numeric - analytic) / std::max(1e-4, std::fabs(numeric) + std::fabs(analytic));
      worst = std::max(worst, err);
    }
    bool pass = worst <= tolerance;
    ok &= pass;
    std::printf("%-*s %10lld %14.3e%s\n", width, name.c_str(), (long long)checks, worst, pass ? "" : "  FAIL");
  }
  std::printf("%s: gradients %s (tolerance %g)\n", p.model.name.c_str(), ok ? "match" : "DO NOT match", tolerance);
  return ok ? 0 : 1;
}

} // namespace soma
