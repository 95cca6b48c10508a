// Layers over images [channels, height, width], with PyTorch's arguments, defaults and shapes:
//   conv1d, maxpool1d, avgpool1d: over sequences [channels, length], their 2-d twins over
//       [channels, 1, length] (PyTorch's Conv1d weight layout [filters, channels / groups, k])
//   conv2d(filters, kernel, stride, padding, dilation, groups): conv2d(x, w) + broadcast(b)
//       (w is [filters, channels / groups, kh, kw], b is [filters]), at any stride
//       (transforms/Phases.h runs those the target has no kernel for over phases)
//   maxpool2d(kernel, stride, padding, ceil_mode): max_pool2d, one op with its own kernels
//   avgpool2d(..., count_include_pad): windows that tile the image are a reshape and a sum,
//       others avg_pool2d
//   adaptive_avgpool2d(size): PyTorch's windows [floor(i n / o), ceil((i + 1) n / o))
//   global_avgpool: the sum over the pixels times 1 / (h w)
#include "layers/Layer.h"

#include <fmt/format.h>
#include <functional>
#include <numeric>

namespace soma::layers {

using ir::Op;
using ir::Shape;

namespace {

const char *const kAxisName[2] = {"rows", "columns"};

bool needImage(const Layer &l, const LayerCall &call) {
  if (l.in.size() == 3)
    return true;
  return call.wrongShape(l, "an image [channels, height, width]" +
                                std::string(l.in.size() == 2 ? " (declare the input as [1, h, w])" : ""));
}

bool needSequence(const Layer &l, const LayerCall &call) {
  if (l.in.size() == 2)
    return true;
  return call.wrongShape(l, "a sequence [channels, length]" +
                                std::string(l.in.size() == 1 ? " (declare the input as [1, n])" : ""));
}

// A 1-d layer's scalar argument as its 2-d twin's pair: `unit` along the image's unit axis.
std::array<int64_t, 2> lifted(const LayerCall &call, const char *name, int64_t absent, int64_t unit) {
  return {unit, static_cast<int64_t>(call.number(name, static_cast<double>(absent)))};
}

// The kernel and padding per axis (PyTorch's "same": (span - 1) / 2 before, the rest after, the
// span of a kernel k at dilation d being (k - 1) d + 1), and the output shape [filters, h, w],
// of an image `in`; a.kernel, a.stride and a.dilation given.
bool checkConvOf(Layer &l, const LayerCall &call, const Dims &in, ConvAttrs a, std::array<int64_t, 2> padding,
                 bool same) {
  if (same && a.stride != std::array<int64_t, 2>{1, 1}) {
    call.diags.report(DiagKind::UnsupportedParameters, call.range, call.spelling,
                      fmt::format("padding \"same\" with stride {}",
                                  a.stride[0] == a.stride[1] || l.in.size() == 2 // a sequence's: its length's
                                      ? std::to_string(a.stride[1])
                                      : fmt::format("[{}, {}]", a.stride[0], a.stride[1])),
                      "\"same\" keeps the input's size, which only stride 1 does (as in PyTorch)");
    return false;
  }
  a.padBegin = a.padEnd = padding;
  for (size_t i = 0; i < 2; ++i) {
    int64_t span = ir::convSpan(a.kernel[i], a.dilation[i]);
    if (same) {
      a.padBegin[i] = (span - 1) / 2;
      a.padEnd[i] = span - 1 - a.padBegin[i];
    }
    int64_t n = in[i + 1], padded = n + a.padBegin[i] + a.padEnd[i];
    if (span > padded) {
      call.diags.report(DiagKind::WindowTooLarge, call.range, call.spelling, formatDims(l.in),
                        fmt::format("kernel {}{} spans {} {}, more than the padded input's {} ({} + {})", a.kernel[i],
                                    a.dilation[i] == 1 ? "" : fmt::format(" with dilation {}", a.dilation[i]), span,
                                    kAxisName[i], padded, n,
                                    a.padBegin[i] == a.padEnd[i]
                                        ? fmt::format("2 x padding {}", a.padBegin[i])
                                        : fmt::format("padding {} + {}", a.padBegin[i], a.padEnd[i])));
      return false;
    }
  }
  a.filters = static_cast<int64_t>(call.number("filters", 0));
  a.groups = static_cast<int64_t>(call.number("groups", 1));
  for (auto [count, what] : {std::pair{in[0], "channels"}, std::pair{a.filters, "filters"}})
    if (count % a.groups) {
      call.diags.report(
          DiagKind::GroupsDoNotDivide, call.range, call.spelling, formatDims(l.in),
          fmt::format("{} groups do not divide its {} {} (each group takes as many of both)", a.groups, count, what));
      return false;
    }
  l.out = {a.filters, 0, 0};
  for (size_t i = 0; i < 2; ++i)
    l.out[i + 1] =
        (in[i + 1] + a.padBegin[i] + a.padEnd[i] - ir::convSpan(a.kernel[i], a.dilation[i])) / a.stride[i] + 1;
  l.attrs = a;
  return true;
}

bool checkConv(Layer &l, const LayerCall &call) {
  if (!needImage(l, call))
    return false;
  ConvAttrs a;
  a.kernel = call.pair("kernel", 1);
  a.dilation = call.pair("dilation", 1);
  a.stride = call.pair("stride", 1);
  const ast::Expr *padding = call.arg("padding");
  bool named = padding && padding->kind == ast::Expr::Kind::String;
  return checkConvOf(l, call, l.in, a, named ? std::array<int64_t, 2>{0, 0} : intPair(padding, 0),
                     named && padding->text == "same");
}

bool checkConv1d(Layer &l, const LayerCall &call) {
  if (!needSequence(l, call))
    return false;
  ConvAttrs a;
  a.kernel = lifted(call, "kernel", 1, 1);
  a.dilation = lifted(call, "dilation", 1, 1);
  a.stride = lifted(call, "stride", 1, 1);
  const ast::Expr *padding = call.arg("padding");
  bool named = padding && padding->kind == ast::Expr::Kind::String;
  if (padding && padding->kind == ast::Expr::Kind::List) {
    call.diags.report(DiagKind::UnsupportedParameters, call.range, call.spelling, "a pair of paddings",
                      "a sequence has one axis: padding is a number, \"same\" or \"valid\"");
    return false;
  }
  if (!checkConvOf(l, call, {l.in[0], 1, l.in[1]}, a, {0, named ? 0 : intPair(padding, 0)[0]},
                   named && padding->text == "same"))
    return false;
  l.out = {l.out[0], l.out[2]};
  return true;
}

std::vector<LayerParam> convParams(const Layer &l) {
  const ConvAttrs &a = l.as<ConvAttrs>();
  Dims w = {a.filters, l.in[0] / a.groups, a.kernel[0], a.kernel[1]};
  if (l.kind == LayerKind::Conv1D) // PyTorch's Conv1d layout
    w.erase(w.begin() + 2);
  return {{"w", w, LayerParam::Role::Weight, {}, false}, {"b", {a.filters}, LayerParam::Role::Bias, {}, false}};
}

// Elements 0, t, 2t, ... (`count` of them) of v along `axis` (an image axis of [B, C, H, W]):
// v padded to count * t there, the axis split into [count, t], the first of each t kept. A
// convolution whose strides differ between the axes runs at the stride they share (their gcd)
// and keeps every t-th output along the other: t times the work of that axis, on the stride-1
// kernels rather than the direct loops.
int everyNth(ir::Builder &b, int v, size_t axis, int64_t t, int64_t count) {
  Shape s = b.shape(v);
  if (s[axis] < count * t) {
    s[axis] = count * t;
    v = b.pad(v, static_cast<int64_t>(axis), 0, s);
  } else if (s[axis] > count * t) {
    s[axis] = count * t;
    v = b.slice(v, static_cast<int64_t>(axis), 0, s);
  }
  Shape split = s;
  split[axis] = count;
  split.insert(split.begin() + static_cast<std::ptrdiff_t>(axis) + 1, t);
  Shape first = split;
  first[axis + 1] = 1;
  Shape out = s;
  out[axis] = count;
  return b.reshape(b.slice(b.reshape(v, split), static_cast<int64_t>(axis) + 1, 0, first), out);
}

// The convolution of x [B, C, H, W] by w [F, C / groups, kh, kw] plus bias, `out` its [F, Ho, Wo].
int convolve(ir::Builder &b, const ConvAttrs &a, const Dims &in, const Dims &out, int x, int w, int bias) {
  // Padding that differs between the axes or sides: the conv's own padding is the least of them,
  // the rest explicit zeros around x.
  int64_t p = std::min({a.padBegin[0], a.padBegin[1], a.padEnd[0], a.padEnd[1]});
  for (size_t i = 0; i < 2; ++i)
    if (a.padBegin[i] > p || a.padEnd[i] > p) {
      Shape padded = b.shape(x);
      padded[i + 2] += a.padBegin[i] + a.padEnd[i] - 2 * p;
      x = b.pad(x, static_cast<int64_t>(i) + 2, a.padBegin[i] - p, padded);
    }
  // The IR's convolution has one stride for both axes: the one they share. A dilated one with a
  // stride (not depthwise, whose kernels take both) runs at stride 1, keeping every stride-th
  // output: more work than the direct loops would do, at several times their speed (they are its
  // only way at a stride; phases do not split dilated taps).
  bool depthwise = a.groups > 1 && in[0] == a.groups;
  int64_t shared = std::gcd(a.stride[0], a.stride[1]);
  int64_t stride = a.dilation != std::array<int64_t, 2>{1, 1} && !depthwise ? 1 : shared;
  int y = b.conv2d(x, w, {stride, p, a.dilation, a.groups});
  for (size_t i = 0; i < 2; ++i) // a stride of its own along this axis: every t-th of the outputs
    if (int64_t t = a.stride[i] / stride; t > 1)
      y = everyNth(b, y, i + 2, t, out[i + 1]);
  return b.binary(Op::Add, y, b.broadcast(bias, b.shape(y), 0b1101));
}

int lowerConv(LayerLowering &cx, const Layer &l, int x) {
  return convolve(cx.b, l.as<ConvAttrs>(), l.in, l.out, x, cx.param(l, 0), cx.param(l, 1));
}

int lowerConv1d(LayerLowering &cx, const Layer &l, int x) {
  const ConvAttrs &a = l.as<ConvAttrs>();
  ir::Builder &b = cx.b;
  int w = b.reshape(cx.param(l, 0), {a.filters, l.in[0] / a.groups, 1, a.kernel[1]});
  int y = convolve(b, a, {l.in[0], 1, l.in[1]}, {l.out[0], 1, l.out[1]},
                   b.reshape(x, {ir::kBatch, l.in[0], 1, l.in[1]}), w, cx.param(l, 1));
  return b.reshape(y, {ir::kBatch, l.out[0], l.out[1]});
}

// A pooling layer's windows per axis (PyTorch's rules and defaults: stride = kernel, floor unless
// ceil_mode) and output shape.
// Of an image `in`, a.kernel, a.stride and a.padding given.
bool checkPoolOf(Layer &l, const LayerCall &call, const Dims &in, PoolAttrs a) {
  bool ceil = call.flag("ceil_mode", false);
  a.countIncludePad = call.flag("count_include_pad", true);
  l.out = {in[0], 0, 0};
  for (size_t i = 0; i < 2; ++i) {
    int64_t k = a.kernel[i], p = a.padding[i], n = in[i + 1];
    if (2 * p > k) {
      call.diags.report(DiagKind::PaddingTooLarge, call.range, call.spelling, p, k, kAxisName[i]);
      return false;
    }
    if (k > n + 2 * p) {
      call.diags.report(DiagKind::WindowTooLarge, call.range, call.spelling, formatDims(l.in),
                        fmt::format("kernel {} spans {} {}, more than the padded input's {} ({} + 2 x padding {})", k,
                                    k, kAxisName[i], n + 2 * p, n, p));
      return false;
    }
    l.out[i + 1] = ir::poolOutSize(n, k, a.stride[i], p, ceil);
  }
  l.attrs = a;
  return true;
}

bool checkPool(Layer &l, const LayerCall &call) {
  if (!needImage(l, call))
    return false;
  PoolAttrs a;
  a.kernel = call.pair("kernel", 1);
  a.stride = call.arg("stride") ? call.pair("stride", 0) : a.kernel;
  a.padding = call.pair("padding", 0);
  return checkPoolOf(l, call, l.in, a);
}

bool checkPool1d(Layer &l, const LayerCall &call) {
  if (!needSequence(l, call))
    return false;
  PoolAttrs a;
  a.kernel = lifted(call, "kernel", 1, 1);
  a.stride = call.arg("stride") ? lifted(call, "stride", 1, 1) : a.kernel;
  a.padding = lifted(call, "padding", 0, 0);
  if (!checkPoolOf(l, call, {l.in[0], 1, l.in[1]}, a))
    return false;
  l.out = {l.out[0], l.out[2]};
  return true;
}

// A layer's image shapes: a 1-d layer's [channels, 1, length].
Dims image(const Dims &d) { return d.size() == 2 ? Dims{d[0], 1, d[1]} : d; }

ir::Pool2D pool(const Layer &l) {
  const PoolAttrs &a = l.as<PoolAttrs>();
  ir::Pool2D p;
  p.kernel = a.kernel;
  p.stride = a.stride;
  p.padding = a.padding;
  Dims out = image(l.out);
  p.out = {out[1], out[2]};
  p.includePad = a.countIncludePad;
  return p;
}

// A 1-d layer runs its 2-d twin on [B, C, 1, length].
int overImages(ir::Builder &b, const Layer &l, int x, const std::function<int(int, const Dims &, const Dims &)> &f) {
  if (l.in.size() == 3)
    return f(x, l.in, l.out);
  int y = f(b.reshape(x, {ir::kBatch, l.in[0], 1, l.in[1]}), image(l.in), image(l.out));
  return b.reshape(y, {ir::kBatch, l.out[0], l.out[1]});
}

int lowerMaxPool(LayerLowering &cx, const Layer &l, int x) {
  return overImages(cx.b, l, x, [&](int v, const Dims &, const Dims &) { return cx.b.maxPool2d(v, pool(l)); });
}

int lowerAvgPool(LayerLowering &cx, const Layer &l, int x) {
  ir::Builder &b = cx.b;
  ir::Pool2D p = pool(l);
  return overImages(b, l, x, [&](int v, const Dims &in, const Dims &out) {
    if (!ir::poolTiles(p, in[1], in[2]))
      return b.avgPool2d(v, p);
    int tiles = b.reshape(v, {ir::kBatch, in[0], out[1], p.kernel[0], out[2], p.kernel[1]});
    int pooled = b.reduce(Op::ReduceSum, tiles, 0b101000);
    return b.binary(Op::Mul, pooled, b.fill(1.0 / static_cast<double>(p.kernel[0] * p.kernel[1]), {}));
  });
}

bool checkAdaptive(Layer &l, const LayerCall &call) {
  if (!needImage(l, call))
    return false;
  std::array<int64_t, 2> size = call.pair("size", 1);
  l.out = {l.in[0], size[0], size[1]}; // larger than the input too, as in PyTorch: windows then share elements
  return true;
}

// Where the windows are one window at one stride (o divides n, or n = 7, o = 3) an avg pooling;
// along an axis where they are not, each output row is the mean of its slice, the rows then
// stacked.
int lowerAdaptive(LayerLowering &cx, const Layer &l, int x) {
  ir::Builder &b = cx.b;
  ir::Pool2D p;
  std::array<bool, 2> uniform{};
  for (size_t a = 0; a < 2; ++a) {
    int64_t n = l.in[a + 1], o = l.out[a + 1], k = (n + o - 1) / o, s = o > 1 ? (n - k) / (o - 1) : 1;
    uniform[a] = o == 1 || s >= 1; // an output larger than the input shares windows: slices
    for (int64_t i = 0; i < o; ++i)
      uniform[a] = uniform[a] && i * n / o == i * s && ((i + 1) * n + o - 1) / o == i * s + k;
    p.kernel[a] = uniform[a] ? k : 1;
    p.stride[a] = uniform[a] ? std::max<int64_t>(s, 1) : 1;
    p.out[a] = uniform[a] ? o : n;
  }
  if (uniform[0] && uniform[1])
    return b.avgPool2d(x, p);
  Shape shape = b.shape(x);
  for (int axis = 2; axis < 4; ++axis) {
    auto a = static_cast<size_t>(axis - 2);
    if (uniform[a])
      continue;
    int64_t n = shape[static_cast<size_t>(axis)], o = l.out[a + 1];
    Shape out = shape, part = shape;
    out[static_cast<size_t>(axis)] = o;
    int sum = -1;
    for (int64_t i = 0; i < o; ++i) {
      int64_t begin = i * n / o, end = ((i + 1) * n + o - 1) / o;
      part[static_cast<size_t>(axis)] = end - begin;
      int mean = b.binary(Op::Mul, b.reduce(Op::ReduceSum, b.slice(x, axis, begin, part), 1u << axis),
                          b.fill(1.0 / static_cast<double>(end - begin), {}));
      Shape one = out;
      one[static_cast<size_t>(axis)] = 1;
      int row = b.pad(b.reshape(mean, one), axis, i, out);
      sum = sum < 0 ? row : b.binary(Op::Add, sum, row);
    }
    x = sum;
    shape = out;
  }
  if (!uniform[0] && !uniform[1])
    return x;
  p.out = {l.out[1], l.out[2]}; // the uniform axis pooled, the other (already o) by windows of 1
  return b.avgPool2d(x, p);
}

bool checkGlobalPool(Layer &l, const LayerCall &call) {
  if (!needImage(l, call))
    return false;
  l.out = {l.in[0]};
  return true;
}

int lowerGlobalPool(LayerLowering &cx, const Layer &l, int x) {
  return cx.b.binary(Op::Mul, cx.b.reduce(Op::ReduceSum, x, 0b1100),
                     cx.b.fill(1.0 / static_cast<double>(l.in[1] * l.in[2]), {}));
}

const std::vector<Param> kPoolParams = {{"kernel", ArgType::PositiveIntPair, true},
                                        {"stride", ArgType::PositiveIntPair, false},
                                        {"padding", ArgType::NonNegativeIntPair, false},
                                        {"ceil_mode", ArgType::Bool, false}};

const std::vector<Param> kPool1dParams = {{"kernel", ArgType::PositiveInt, true},
                                          {"stride", ArgType::PositiveInt, false},
                                          {"padding", ArgType::NonNegativeInt, false},
                                          {"ceil_mode", ArgType::Bool, false}};

// A convolution's arguments: its kernel, stride and dilation of type `window` (a number for a
// sequence, a number or a pair for an image).
std::vector<Param> convArguments(ArgType window) {
  return {{"filters", ArgType::PositiveInt, true},
          {"kernel", window, true},
          {"stride", window, false},
          {"padding", ArgType::Padding, false},
          {"dilation", window, false},
          {"groups", ArgType::PositiveInt, false},
          kLrMultParam,
          kInitParam,
          kBiasInitParam};
}

std::vector<Param> with(std::vector<Param> params, Param extra) {
  params.push_back(extra);
  return params;
}

} // namespace

const LayerRecord Conv2D{"conv2d", convArguments(ArgType::PositiveIntPair), checkConv, convParams, lowerConv};
const LayerRecord MaxPool2D{"maxpool2d", kPoolParams, checkPool, none, lowerMaxPool};
const LayerRecord AvgPool2D{"avgpool2d", with(kPoolParams, {"count_include_pad", ArgType::Bool, false}), checkPool,
                            none, lowerAvgPool};
const LayerRecord Conv1D{"conv1d", convArguments(ArgType::PositiveInt), checkConv1d, convParams, lowerConv1d};
const LayerRecord MaxPool1D{"maxpool1d", kPool1dParams, checkPool1d, none, lowerMaxPool};
const LayerRecord AvgPool1D{"avgpool1d", with(kPool1dParams, {"count_include_pad", ArgType::Bool, false}), checkPool1d,
                            none, lowerAvgPool};
const LayerRecord AdaptiveAvgPool2D{
    "adaptive_avgpool2d", {{"size", ArgType::PositiveIntPair, true}}, checkAdaptive, none, lowerAdaptive};
const LayerRecord GlobalAvgPool{"global_avgpool", {}, checkGlobalPool, none, lowerGlobalPool};

} // namespace soma::layers
