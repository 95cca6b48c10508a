// Checks every tensor against the model before anything is overwritten, so a bad file leaves
// the session as it was; messages name the tensor and both shapes.
#include "soma/Checkpoint.h"

#include "soma/Format.h"
#include "soma/Safetensors.h"

#include <charconv>
#include <cstdio>

namespace soma::rt {

namespace {

constexpr const char *kFormat = "soma-checkpoint-1";
constexpr const char *kOrder = "soma.shuffle_order";
constexpr const char *kBest = "soma.best."; // + a parameter's or statistic's name

NamedTensor tensorOf(const TensorInfo &p, const FloatBuffer &b) {
  NamedTensor t;
  t.name = p.name;
  t.shape = p.shape;
  t.f32.assign(b.data(), b.data() + b.size());
  return t;
}

bool parseInt(const std::string &s, int64_t &out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out >= 0;
}

// Finds each of `want` in `file` with its shape; fills `found` (parallel to `want`).
std::string match(const std::string &path, const TensorFile &file, const std::vector<TensorInfo> &want,
                  const std::string &model, const char *what, std::vector<const NamedTensor *> &found) {
  for (const TensorInfo &p : want) {
    const NamedTensor *t = file.find(p.name);
    if (!t)
      return rt::format("{}: error: no tensor '{}' ({} of model '{}', shape {}); is this file from another model?",
                        path, p.name, what, model, formatTensorShape(p.shape));
    if (t->dtype != NamedTensor::DType::F32 || t->shape != p.shape)
      return rt::format("{}: error: tensor '{}' has shape {} in the file, but model '{}' has {}", path, p.name,
                        formatTensorShape(t->shape), model, formatTensorShape(p.shape));
    found.push_back(t);
  }
  return "";
}

void copyInto(const std::vector<const NamedTensor *> &from, std::vector<FloatBuffer> &to) {
  for (size_t i = 0; i < from.size(); ++i)
    std::copy(from[i]->f32.begin(), from[i]->f32.end(), to[i].data());
}

} // namespace

std::string saveCheckpoint(const std::string &path, Session &s, const TrainingState &t) {
  const ModelInfo &m = s.model();
  TensorFile file;
  file.metadata = {
      {"format", kFormat},
      {"model", s.model().name},
      {"epoch", std::to_string(t.epoch)},
      {"steps", std::to_string(s.steps())},
      {"rng", t.rng->saveState()},
      {"plateau",
       rt::format("{:.17g}:{:.17g}:{}:{}", t.plateauScale, t.plateauBest, t.plateauBad, t.plateauSeen ? 1 : 0)},
      {"early_stopping", rt::format("{:.17g}:{}:{}:{}", t.stopBest, t.stopBad, t.bestEpoch, t.stopSeen ? 1 : 0)}};
  for (size_t i = 0; i < m.params.size(); ++i)
    file.tensors.push_back(tensorOf(m.params[i], s.params()[i]));
  for (size_t i = 0; i < m.buffers.size(); ++i)
    file.tensors.push_back(tensorOf(m.buffers[i], s.buffers()[i]));
  for (size_t i = 0; i < m.state.size(); ++i)
    file.tensors.push_back(tensorOf(m.state[i], s.state()[i]));
  std::vector<TensorInfo> kept = m.weights(); // the best weights so far, for early stopping
  for (size_t i = 0; i < t.best.size() && i < kept.size(); ++i) {
    NamedTensor best;
    best.name = kBest + kept[i].name;
    best.shape = kept[i].shape;
    best.f32 = t.best[i];
    file.tensors.push_back(std::move(best));
  }
  NamedTensor order;
  order.name = kOrder;
  order.dtype = NamedTensor::DType::I64;
  order.shape = {static_cast<int64_t>(t.order.size())};
  order.i64 = t.order;
  file.tensors.push_back(std::move(order));
  return writeSafetensors(path, file);
}

std::string loadCheckpoint(const std::string &path, Session &s, TrainingState &t) {
  TensorFile file;
  if (std::string e = readSafetensors(path, file); !e.empty())
    return e;
  const ModelInfo &m = s.model();
  const std::string &model = s.model().name;
  auto meta = [&](const char *key) {
    auto it = file.metadata.find(key);
    return it == file.metadata.end() ? std::string() : it->second;
  };
  if (meta("format") != kFormat)
    return rt::format("{}: error: not a Soma checkpoint (no \"format\": \"{}\" in its metadata); to start from its "
                      "weights use --weights",
                      path, kFormat);
  std::vector<const NamedTensor *> params, state, buffers;
  if (std::string e = match(path, file, m.params, model, "a parameter", params); !e.empty())
    return e;
  if (std::string e = match(path, file, m.buffers, model, "a statistic", buffers); !e.empty())
    return e;
  if (std::string e = match(path, file, m.state, model, "optimizer state", state); !e.empty())
    return e;
  std::vector<TensorInfo> kept = m.weights();
  std::vector<std::vector<float>> bestWeights;
  for (const TensorInfo &p : kept)
    if (const NamedTensor *b = file.find(kBest + p.name)) {
      if (b->dtype != NamedTensor::DType::F32 || b->shape != p.shape)
        return rt::format("{}: error: tensor '{}' has shape {} in the file, but model '{}' has {}", path, b->name,
                          formatTensorShape(b->shape), model, formatTensorShape(p.shape));
      bestWeights.push_back(b->f32);
    }
  if (!bestWeights.empty() && bestWeights.size() != kept.size())
    return rt::format("{}: error: corrupted: the checkpoint keeps the best weights of only some tensors", path);
  for (const NamedTensor &tensor : file.tensors) {
    bool known = tensor.name == kOrder || tensor.name.rfind(kBest, 0) == 0;
    for (const std::vector<TensorInfo> *list : {&m.params, &m.buffers, &m.state})
      for (const TensorInfo &p : *list)
        known |= p.name == tensor.name;
    if (!known)
      return rt::format("{}: error: tensor '{}' is not part of model '{}' with this optimizer; is this file from "
                        "another model?",
                        path, tensor.name, model);
  }
  const NamedTensor *order = file.find(kOrder);
  int64_t epoch, steps;
  Rng rng(1);
  if (!order || order->dtype != NamedTensor::DType::I64 || order->i64.size() != t.order.size())
    return rt::format("{}: error: the checkpoint's shuffling order does not fit the {} training samples", path,
                      t.order.size());
  std::vector<bool> seen(t.order.size(), false);
  for (int64_t i : order->i64) {
    if (i < 0 || i >= static_cast<int64_t>(seen.size()) || seen[static_cast<size_t>(i)])
      return rt::format("{}: error: corrupted: the shuffling order is not a permutation", path);
    seen[static_cast<size_t>(i)] = true;
  }
  double scale = 1, best = 0;
  long long bad = 0;
  int improved = 0, used = 0;
  std::string plateau = meta("plateau");
  bool plateauOk = std::sscanf(plateau.c_str(), "%lg:%lg:%lld:%d%n", &scale, &best, &bad, &improved, &used) == 4 &&
                   used == static_cast<int>(plateau.size()) && scale > 0 && bad >= 0;
  double stopBest = 0;
  long long stopBad = 0, bestEpoch = 0;
  int stopSeen = 0;
  std::string early = meta("early_stopping");
  used = 0;
  bool earlyOk =
      std::sscanf(early.c_str(), "%lg:%lld:%lld:%d%n", &stopBest, &stopBad, &bestEpoch, &stopSeen, &used) == 4 &&
      used == static_cast<int>(early.size()) && stopBad >= 0 && bestEpoch >= 0;
  if (!parseInt(meta("epoch"), epoch) || !parseInt(meta("steps"), steps) || !rng.restoreState(meta("rng")) ||
      !plateauOk || !earlyOk)
    return rt::format("{}: error: corrupted: its metadata needs an epoch, a step count, a generator state and the "
                      "schedule's state",
                      path);
  // Everything checked: now overwrite.
  copyInto(params, s.params());
  copyInto(buffers, s.buffers());
  copyInto(state, s.state());
  s.setSteps(steps);
  t.epoch = epoch;
  t.order = order->i64;
  *t.rng = rng;
  t.plateauScale = scale;
  t.plateauBest = best;
  t.plateauBad = bad;
  t.plateauSeen = improved != 0;
  t.stopBest = stopBest;
  t.stopBad = stopBad;
  t.bestEpoch = bestEpoch;
  t.stopSeen = stopSeen != 0;
  t.best = std::move(bestWeights);
  return "";
}

std::string saveWeights(const std::string &path, Session &s) {
  const ModelInfo &m = s.model();
  TensorFile file;
  file.metadata = {{"model", m.name}};
  for (size_t i = 0; i < m.params.size(); ++i)
    file.tensors.push_back(tensorOf(m.params[i], s.params()[i]));
  for (size_t i = 0; i < m.buffers.size(); ++i)
    file.tensors.push_back(tensorOf(m.buffers[i], s.buffers()[i]));
  return writeSafetensors(path, file);
}

std::string loadWeights(const std::string &path, Session &s) {
  TensorFile file;
  if (std::string e = readSafetensors(path, file); !e.empty())
    return e;
  const ModelInfo &m = s.model();
  const std::string &model = s.model().name;
  std::vector<const NamedTensor *> params, buffers;
  if (std::string e = match(path, file, m.params, model, "a parameter", params); !e.empty())
    return e;
  if (std::string e = match(path, file, m.buffers, model, "a statistic", buffers); !e.empty())
    return e;
  copyInto(params, s.params());
  copyInto(buffers, s.buffers());
  return "";
}

} // namespace soma::rt
