// The model description's helpers and its serialization. One `visit` per struct lists its fields
// once; the writer and the reader both walk it, so the two directions cannot disagree.
#include "soma/Model.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace soma::rt {

std::string formatDims(const Dims &d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i)
    s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

std::string formatTensorShape(const Dims &d) { return "f32" + formatDims(d); }

int64_t TensorInfo::elements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

namespace {

int64_t findSlot(const std::vector<FunctionLayout::Named> &list, const std::string &name) {
  for (const FunctionLayout::Named &n : list)
    if (n.name == name)
      return n.slot;
  return -1;
}

} // namespace

int64_t FunctionLayout::inputSlot(const std::string &name) const { return findSlot(inputs, name); }
int64_t FunctionLayout::resultSlot(const std::string &name) const { return findSlot(results, name); }

int64_t planArena(const FunctionLayout &f, int64_t maxBatch, std::vector<int64_t> &offsets) {
  struct Placed {
    int64_t begin, end, lo, hi; // interval in kernels, [lo, hi) in floats
  };
  std::vector<Placed> placed;
  offsets.assign(f.slots.size(), -1);
  int64_t arena = 0;
  std::vector<std::pair<int64_t, int64_t>> busy;
  for (size_t sl = 0; sl < f.slots.size(); ++sl) {
    const FunctionLayout::Slot &s = f.slots[sl];
    if (s.bound)
      continue;
    int64_t size = (s.perSample * maxBatch + s.fixed + 15) / 16 * 16; // 64-byte aligned
    busy.clear();
    for (const Placed &p : placed)
      if (!(p.end < s.first || s.last < p.begin))
        busy.push_back({p.lo, p.hi});
    std::sort(busy.begin(), busy.end());
    int64_t at = 0;
    for (auto [lo, hi] : busy) {
      if (at + size <= lo)
        break;
      at = std::max(at, hi);
    }
    offsets[sl] = at;
    placed.push_back({s.first, s.last, at, at + size});
    arena = std::max(arena, at + size);
  }
  return arena;
}

int64_t ModelInfo::labelSlots() const { return config && config->labelSize > 1 ? config->labelSize : 1; }

int64_t ModelInfo::sampleSize() const {
  int64_t n = 1;
  for (int64_t d : inputDims)
    n *= d;
  return n;
}

std::vector<TensorInfo> ModelInfo::weights() const {
  std::vector<TensorInfo> w = params;
  w.insert(w.end(), buffers.begin(), buffers.end());
  return w;
}

namespace {

// Every field of every struct, in one order.
template <typename IO> void visit(IO &io, InitSpec &v) {
  io(v.kind, InitSpec::Kind::HeNormal);
  io(v.a), io(v.b);
}
template <typename IO> void visit(IO &io, OptimizerSpec &v) {
  io(v.kind, OptimizerKind::Adagrad);
  io(v.momentum), io(v.nesterov), io(v.beta1), io(v.beta2), io(v.alpha), io(v.eps), io(v.weightDecay);
}
template <typename IO> void visit(IO &io, ScheduleSpec &v) {
  io(v.kind, ScheduleSpec::Kind::Plateau);
  io(v.every), io(v.milestones), io(v.gamma), io(v.minLr), io(v.factor), io(v.patience);
}
template <typename IO> void visit(IO &io, DataSpec &v) {
  io(v.kind, DataSpec::Kind::Npy);
  io(v.name), io(v.images), io(v.labels), io(v.labelColumns), io(v.labelNames), io(v.columns), io(v.columnNames);
  io(v.header);
}
template <typename IO> void visit(IO &io, TrainConfig &v) {
  io(v.classes), io(v.lr), io(v.optimizer), io(v.batch), io(v.epochs), io(v.seed), io(v.showPredictions);
  io(v.checkpoint), io(v.topK), io(v.confusionMatrix), io(v.evalEvery), io(v.accuracy), io(v.labelSize);
  io(v.earlyStop.enabled), io(v.earlyStop.onAccuracy), io(v.earlyStop.restoreBest), io(v.earlyStop.patience);
  io(v.earlyStop.minDelta), io(v.augment.shift), io(v.augment.flip), io(v.standardize), io(v.validation);
  io(v.schedule), io(v.warmupEpochs), io(v.train), io(v.test);
}
template <typename IO> void visit(IO &io, TensorInfo &v) {
  io(v.name), io(v.shape), io(v.init), io(v.fanIn), io(v.fanOut);
}
template <typename IO> void visit(IO &io, FunctionLayout::Slot &v) {
  io(v.bound), io(v.perSample), io(v.fixed), io(v.first), io(v.last);
}
template <typename IO> void visit(IO &io, FunctionLayout::Named &v) { io(v.name), io(v.slot); }
template <typename IO> void visit(IO &io, FunctionLayout::Kernel &v) {
  io(v.kind), io(v.shape), io(v.flopsPerSample), io(v.flopsFixed);
}
template <typename IO> void visit(IO &io, FunctionLayout &v) {
  io(v.slots), io(v.inputs), io(v.results), io(v.kernels);
}
template <typename IO> void visit(IO &io, ModelInfo &v) {
  io(v.name), io(v.inputName), io(v.inputDims), io(v.outputDims), io(v.outputs), io(v.threshold);
  io(v.params), io(v.state), io(v.buffers), io(v.forward), io(v.train), io(v.config);
}

constexpr char kMagic[8] = {'S', 'O', 'M', 'A', 'M', 'D', 'L', '1'};

// Little-endian fixed-width numbers, length-prefixed strings and lists, a flag before optionals.
struct Writer {
  std::string out;
  void raw(const void *p, size_t n) { out.append(static_cast<const char *>(p), n); }
  void operator()(int64_t v) { raw(&v, 8); }
  void operator()(uint64_t v) { raw(&v, 8); }
  void operator()(double v) { raw(&v, 8); }
  void operator()(float v) { raw(&v, 4); }
  void operator()(bool v) { out.push_back(v ? 1 : 0); }
  void operator()(std::string &v) {
    (*this)(static_cast<int64_t>(v.size()));
    out += v;
  }
  template <typename E> void operator()(E &v, E) { (*this)(static_cast<int64_t>(v)); }
  template <typename T> void operator()(std::vector<T> &v) {
    (*this)(static_cast<int64_t>(v.size()));
    for (T &x : v)
      (*this)(x);
  }
  template <typename T> void operator()(std::optional<T> &v) {
    (*this)(v.has_value());
    if (v)
      (*this)(*v);
  }
  template <typename T> std::enable_if_t<std::is_class_v<T>> operator()(T &v) { visit(*this, v); }
};

struct Reader {
  const char *p, *end;
  bool ok = true;
  void raw(void *dst, size_t n) {
    if (!ok || static_cast<size_t>(end - p) < n) {
      ok = false;
      std::memset(dst, 0, n);
      return;
    }
    std::memcpy(dst, p, n);
    p += n;
  }
  void operator()(int64_t &v) { raw(&v, 8); }
  void operator()(uint64_t &v) { raw(&v, 8); }
  void operator()(double &v) { raw(&v, 8); }
  void operator()(float &v) { raw(&v, 4); }
  void operator()(bool &v) {
    char c = 0;
    raw(&c, 1);
    ok &= c == 0 || c == 1;
    v = c == 1;
  }
  int64_t count() {
    int64_t n = 0;
    (*this)(n);
    ok &= n >= 0 && n <= end - p; // every element takes at least a byte
    return ok ? n : 0;
  }
  void operator()(std::string &v) {
    int64_t n = count();
    v.assign(p, static_cast<size_t>(n));
    p += n;
  }
  template <typename E> void operator()(E &v, E last) {
    int64_t n = 0;
    (*this)(n);
    ok &= n >= 0 && n <= static_cast<int64_t>(last);
    v = ok ? static_cast<E>(n) : E{};
  }
  template <typename T> void operator()(std::vector<T> &v) {
    int64_t n = count();
    v.clear();
    for (int64_t i = 0; i < n && ok; ++i)
      (*this)(v.emplace_back());
  }
  template <typename T> void operator()(std::optional<T> &v) {
    bool has = false;
    (*this)(has);
    v.reset();
    if (!has)
      return;
    T value{}; // read beside, then moved in (emplace here trips GCC 12's maybe-uninitialized)
    (*this)(value);
    v = std::move(value);
  }
  template <typename T> std::enable_if_t<std::is_class_v<T>> operator()(T &v) { visit(*this, v); }
};

} // namespace

std::string serializeModel(const ModelInfo &m) {
  Writer w;
  w.raw(kMagic, sizeof kMagic);
  ModelInfo copy = m; // visit takes mutable references, shared with the reader
  w(copy);
  return w.out;
}

std::string parseModel(const char *data, size_t size, ModelInfo &out) {
  if (size < sizeof kMagic || std::memcmp(data, kMagic, sizeof kMagic) != 0)
    return "not a Soma model description (wrong magic; built by another version of Soma?)";
  Reader r{data + sizeof kMagic, data + size};
  ModelInfo m;
  r(m);
  if (!r.ok || r.p != r.end)
    return "corrupted Soma model description";
  int64_t slots[2] = {static_cast<int64_t>(m.forward.slots.size()),
                      m.train ? static_cast<int64_t>(m.train->slots.size()) : 0};
  for (int f = 0; f < 2; ++f) {
    const FunctionLayout *layout = f == 0 ? &m.forward : m.train ? &*m.train : nullptr;
    if (!layout)
      continue;
    for (const auto *list : {&layout->inputs, &layout->results})
      for (const FunctionLayout::Named &n : *list)
        if (n.slot < 0 || n.slot >= slots[f])
          return "corrupted Soma model description (a slot out of range)";
  }
  out = std::move(m);
  return "";
}

} // namespace soma::rt
