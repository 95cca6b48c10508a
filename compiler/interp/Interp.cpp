// One case per op, no default. Index arithmetic is done with explicit multi-indices so that
// each case reads like its definition.
#include "interp/Interp.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>

namespace soma::interp {

using namespace ir;

namespace {

std::vector<int64_t> concrete(const Shape &s, int64_t batch) {
  std::vector<int64_t> d;
  for (int64_t x : s)
    d.push_back(x == kBatch ? batch : x);
  return d;
}

int64_t count(const std::vector<int64_t> &d) {
  int64_t n = 1;
  for (int64_t x : d)
    n *= x;
  return n;
}

// Multi-index of linear position `i` in `dims`.
std::vector<int64_t> unflatten(int64_t i, const std::vector<int64_t> &dims) {
  std::vector<int64_t> idx(dims.size());
  for (size_t k = dims.size(); k-- > 0;) {
    idx[k] = i % dims[k];
    i /= dims[k];
  }
  return idx;
}

int64_t flatten(const std::vector<int64_t> &idx, const std::vector<int64_t> &dims) {
  int64_t i = 0;
  for (size_t k = 0; k < dims.size(); ++k)
    i = i * dims[k] + idx[k];
  return i;
}

// Drops the axes set in `axes` from a multi-index.
std::vector<int64_t> dropAxes(const std::vector<int64_t> &idx, uint32_t axes) {
  std::vector<int64_t> out;
  for (size_t k = 0; k < idx.size(); ++k)
    if (!(axes >> k & 1))
      out.push_back(idx[k]);
  return out;
}

// A pointwise math op on its operands' values (b unused for one operand). The switch names every
// op: a new one must say how it is evaluated, or that it is not pointwise math.
double pointwise(Op op, double a, double b) {
  switch (op) {
  case Op::Neg:
    return -a;
  case Op::Exp:
    return std::exp(a);
  case Op::Log:
    return std::log(a);
  case Op::Sqrt:
    return std::sqrt(a);
  case Op::Expm1:
    return std::expm1(a);
  case Op::Log1p:
    return std::log1p(a);
  case Op::Erf:
    return std::erf(a);
  case Op::Erfc:
    return std::erfc(a);
  case Op::Sigmoid:
    return 1.0 / (1.0 + std::exp(-a));
  case Op::Tanh:
    return std::tanh(a);
  case Op::Relu:
    return a > 0 ? a : 0.0;
  case Op::Step:
    return a > 0 ? 1.0 : 0.0;
  case Op::Add:
    return a + b;
  case Op::Sub:
    return a - b;
  case Op::Mul:
    return a * b;
  case Op::Div:
    return a / b;
  case Op::Equal:
    return a == b ? 1.0 : 0.0;
  case Op::Input:
  case Op::Fill:
  case Op::Constant:
  case Op::Random:
  case Op::Broadcast:
  case Op::Gather:
  case Op::OneHot:
  case Op::Transpose:
  case Op::Pad:
  case Op::Slice:
  case Op::SpaceToDepth:
  case Op::DepthToSpace:
  case Op::ReduceSum:
  case Op::ReduceMax:
  case Op::SoftmaxXent:
  case Op::SoftmaxXentGrad:
  case Op::MatMul:
  case Op::Conv2D:
  case Op::Conv2DBackData:
  case Op::Conv2DBackFilter:
  case Op::MaxPool2D:
  case Op::MaxPool2DBack:
  case Op::MaxPool2DShare:
  case Op::AvgPool2D:
  case Op::AvgPool2DBack:
  case Op::Reshape:
  case Op::Loop:
  case Op::LoopResult:
    break;
  }
  assert(false && "not a pointwise math op");
  return 0;
}

// Step t of a sequence or stacked value `seq` of IR shape `shape` ([B, T, ...] or [T, ...], as
// ir::stepAxis): copied out of it (`into` false: into `step`) or into it.
void stepSlice(const Shape &shape, Tensor &seq, Tensor &step, int64_t t, bool into) {
  size_t axis = stepAxis(shape);
  int64_t rows = axis == 1 ? seq.dims[0] : 1, steps = seq.dims[axis];
  int64_t n = count(step.dims) / rows;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double &s = seq.data[static_cast<size_t>((r * steps + t) * n + j)];
      double &x = step.data[static_cast<size_t>(r * n + j)];
      if (into)
        s = x;
      else
        x = s;
    }
}

} // namespace

std::vector<Tensor> evaluate(const Function &f, const std::map<std::string, Tensor> &inputs, int64_t batch) {
  std::vector<Tensor> v(f.nodes.size());
  std::map<size_t, std::vector<Tensor>> loops; // each loop's results, as its loop_result nodes number them
  for (size_t i = 0; i < f.nodes.size(); ++i) {
    const Node &n = f.nodes[i];
    Tensor &out = v[i];
    out.dims = concrete(n.shape, batch);
    int64_t size = count(out.dims);
    out.data.assign(size, 0.0);
    auto arg = [&](int k) -> const Tensor & { return v[n.operands[k]]; };
    switch (n.op) {
    case Op::Input: {
      auto it = inputs.find(n.attrs.name);
      if (it == inputs.end() || it->second.data.size() != static_cast<size_t>(size))
        throw std::runtime_error("reference evaluator: input '" + n.attrs.name + "' missing or of the wrong size");
      out.data = it->second.data;
      break;
    }
    case Op::Fill:
      out.data.assign(size, n.attrs.value);
      break;
    case Op::Constant:
      out.data = n.attrs.values;
      break;
    case Op::Neg:
    case Op::Exp:
    case Op::Log:
    case Op::Expm1:
    case Op::Log1p:
    case Op::Sqrt:
    case Op::Erf:
    case Op::Erfc:
    case Op::Sigmoid:
    case Op::Tanh:
    case Op::Relu:
    case Op::Step:
      for (int64_t j = 0; j < size; ++j)
        out.data[j] = pointwise(n.op, arg(0).data[j], 0.0);
      break;
    case Op::Add:
    case Op::Sub:
    case Op::Mul:
    case Op::Div:
    case Op::Equal: {
      // A scalar operand is broadcast.
      const Tensor &a = arg(0), &b = arg(1);
      for (int64_t j = 0; j < size; ++j)
        out.data[j] = pointwise(n.op, a.data[a.data.size() == 1 ? 0 : j], b.data[b.data.size() == 1 ? 0 : j]);
      break;
    }
    case Op::Broadcast:
      for (int64_t j = 0; j < size; ++j)
        out.data[j] = arg(0).data[flatten(dropAxes(unflatten(j, out.dims), n.attrs.axes), arg(0).dims)];
      break;
    case Op::Random: {
      uint32_t seed = static_cast<uint32_t>(static_cast<float>(arg(0).data[0]));
      for (int64_t j = 0; j < size; ++j)
        out.data[j] = randomUniform(static_cast<uint32_t>(j), seed, static_cast<uint32_t>(n.attrs.value));
      break;
    }
    case Op::Transpose:
      for (int64_t j = 0; j < size; ++j) {
        std::vector<int64_t> idx = unflatten(j, out.dims), from(idx.size());
        for (size_t k = 0; k < idx.size(); ++k)
          from[static_cast<size_t>(n.attrs.perm[k])] = idx[k];
        out.data[j] = arg(0).data[flatten(from, arg(0).dims)];
      }
      break;
    case Op::Pad:
    case Op::Slice: {
      const Tensor &x = arg(0);
      size_t ax = static_cast<size_t>(n.attrs.axis);
      for (int64_t j = 0; j < size; ++j) {
        std::vector<int64_t> idx = unflatten(j, out.dims);
        idx[ax] += n.op == Op::Pad ? -n.attrs.offset : n.attrs.offset;
        bool inside = idx[ax] >= 0 && idx[ax] < x.dims[ax];
        out.data[j] = inside ? x.data[flatten(idx, x.dims)] : 0.0;
      }
      break;
    }
    case Op::SpaceToDepth:
    case Op::DepthToSpace: {
      int64_t s = n.attrs.stride, p = n.attrs.offset;
      bool toDepth = n.op == Op::SpaceToDepth;
      const std::vector<int64_t> &deep = toDepth ? out.dims : arg(0).dims, &wide = toDepth ? arg(0).dims : out.dims;
      for (int64_t j = 0; j < size; ++j) {
        std::vector<int64_t> idx = unflatten(j, out.dims);
        if (toDepth) { // (n, (c*p + a)*p + e, r, q) <- (n, c, r*s + a, q*s + e)
          int64_t c = idx[1] / (p * p), a = idx[1] / p % p, e = idx[1] % p;
          out.data[j] = arg(0).data[flatten({idx[0], c, idx[2] * s + a, idx[3] * s + e}, wide)];
        } else {
          int64_t a = idx[2] % s, e = idx[3] % s;
          out.data[j] = a < p && e < p
                            ? arg(0).data[flatten({idx[0], (idx[1] * p + a) * p + e, idx[2] / s, idx[3] / s}, deep)]
                            : 0.0;
        }
      }
      break;
    }
    case Op::Gather: { // row ids[..] of the table; 0 for an id that names no row
      int64_t rows = arg(1).dims[0], width = arg(1).dims[1];
      for (int64_t j = 0; j < size; ++j) {
        double id = arg(0).data[j / width];
        bool row = id >= 0 && id < static_cast<double>(rows) && id == std::floor(id); // NaN: none
        out.data[j] = row ? arg(1).data[static_cast<int64_t>(id) * width + j % width] : 0.0;
      }
      break;
    }
    case Op::OneHot:
      for (int64_t j = 0; j < size; ++j) { // the class is the last index
        int64_t classes = out.dims.back();
        out.data[j] = arg(0).data[j / classes] == static_cast<double>(j % classes) ? 1.0 : 0.0;
      }
      break;
    case Op::ReduceSum:
    case Op::ReduceMax: {
      bool isMax = n.op == Op::ReduceMax;
      if (isMax)
        out.data.assign(size, -std::numeric_limits<double>::infinity());
      const Tensor &x = arg(0);
      for (int64_t j = 0; j < static_cast<int64_t>(x.data.size()); ++j) {
        double &dst = out.data[flatten(dropAxes(unflatten(j, x.dims), n.attrs.axes), out.dims)];
        dst = isMax ? std::max(dst, x.data[j]) : dst + x.data[j];
      }
      break;
    }
    case Op::SoftmaxXent:
    case Op::SoftmaxXentGrad: { // per row of K classes: the log-sum-exp, then the loss or its gradient
      const Tensor &z = arg(0), &t = arg(1);
      int64_t k = z.dims.back(), rows = count(z.dims) / k;
      for (int64_t r = 0; r < rows; ++r) {
        const double *zr = &z.data[r * k], *tr = &t.data[r * k];
        double m = *std::max_element(zr, zr + k), sum = 0, targets = 0;
        for (int64_t c = 0; c < k; ++c) {
          sum += std::exp(zr[c] - m);
          targets += tr[c];
        }
        double lse = m + std::log(sum);
        for (int64_t c = 0; c < k; ++c)
          if (n.op == Op::SoftmaxXent)
            out.data[r] -= tr[c] * (zr[c] - lse);
          else
            out.data[r * k + c] = arg(2).data[r] * (std::exp(zr[c] - lse) * targets - tr[c]);
      }
      break;
    }
    case Op::MatMul: {
      const Tensor &a = arg(0), &b = arg(1); // each as [rows, its last axis] (ShapeRules)
      int64_t nn = out.dims.back(), m = count(out.dims) / nn;
      int64_t ac = a.dims.back(), bc = b.dims.back();
      int64_t k = n.attrs.transA ? count(a.dims) / ac : ac;
      for (int64_t r = 0; r < m; ++r)
        for (int64_t c = 0; c < nn; ++c) {
          double s = 0;
          for (int64_t q = 0; q < k; ++q) {
            double av = n.attrs.transA ? a.data[q * ac + r] : a.data[r * ac + q];
            double bv = n.attrs.transB ? b.data[c * bc + q] : b.data[q * bc + c];
            s += av * bv;
          }
          out.data[r * nn + c] = s;
        }
      break;
    }
    case Op::Conv2D:
    case Op::Conv2DBackData:
    case Op::Conv2DBackFilter: {
      // One loop over the trilinear form; the op decides which tensor accumulates.
      const Tensor *x = n.op == Op::Conv2DBackData ? &out : &arg(0);
      const Tensor *w = n.op == Op::Conv2DBackFilter ? &out : &arg(1);
      const Tensor *y = n.op == Op::Conv2D ? &out : n.op == Op::Conv2DBackData ? &arg(0) : &arg(1);
      int64_t B = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
      int64_t F = w->dims[0], Kh = w->dims[2], Kw = w->dims[3], Ho = y->dims[2], Wo = y->dims[3];
      int64_t s = n.attrs.conv.stride, p = n.attrs.conv.padding, dh = n.attrs.conv.dilation[0],
              dw = n.attrs.conv.dilation[1];
      int64_t Cg = w->dims[1], Fg = F / n.attrs.conv.groups;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t f = 0; f < F; ++f)
          for (int64_t c = f / Fg * Cg; c < (f / Fg + 1) * Cg; ++c) // the channels of f's group
            for (int64_t i = 0; i < Ho; ++i)
              for (int64_t j = 0; j < Wo; ++j)
                for (int64_t u = 0; u < Kh; ++u)
                  for (int64_t v = 0; v < Kw; ++v) {
                    int64_t h = i * s + u * dh - p, ww = j * s + v * dw - p;
                    if (h < 0 || h >= H || ww < 0 || ww >= W)
                      continue;
                    size_t xi = static_cast<size_t>(((b * C + c) * H + h) * W + ww);
                    size_t wi = static_cast<size_t>(((f * Cg + c % Cg) * Kh + u) * Kw + v);
                    size_t yi = static_cast<size_t>(((b * F + f) * Ho + i) * Wo + j);
                    if (n.op == Op::Conv2D)
                      out.data[yi] += x->data[xi] * w->data[wi];
                    else if (n.op == Op::Conv2DBackData)
                      out.data[xi] += y->data[yi] * w->data[wi];
                    else
                      out.data[wi] += x->data[xi] * y->data[yi];
                  }
      break;
    }
    case Op::MaxPool2D:
    case Op::MaxPool2DBack:
    case Op::MaxPool2DShare:
    case Op::AvgPool2D:
    case Op::AvgPool2DBack: { // window by window (Ops.def), the gradients summed into zeros
      const Pool2D &p = n.attrs.pool;
      const Shape &xs = n.op == Op::AvgPool2DBack ? n.shape : f.nodes[n.operands[0]].shape;
      int64_t H = xs[2], W = xs[3], Ho = p.out[0], Wo = p.out[1], planes = (xs[0] == kBatch ? batch : xs[0]) * xs[1];
      std::fill(out.data.begin(), out.data.end(), 0.0);
      for (int64_t plane = 0; plane < planes; ++plane)
        for (int64_t i = 0; i < Ho; ++i)
          for (int64_t j = 0; j < Wo; ++j) {
            PoolSpan rows = poolSpan(p, 0, i, H), cols = poolSpan(p, 1, j, W);
            size_t o = static_cast<size_t>((plane * Ho + i) * Wo + j);
            auto each = [&](const std::function<void(size_t)> &body) {
              for (int64_t h = rows.begin; h < rows.end; ++h)
                for (int64_t w = cols.begin; w < cols.end; ++w)
                  body(static_cast<size_t>((plane * H + h) * W + w));
            };
            double divisor = static_cast<double>(rows.divisor * cols.divisor);
            switch (n.op) {
            case Op::MaxPool2D: {
              double m = -std::numeric_limits<double>::infinity();
              each([&](size_t e) { m = std::max(m, arg(0).data[e]); });
              out.data[o] = m;
              break;
            }
            case Op::AvgPool2D: {
              double sum = 0;
              each([&](size_t e) { sum += arg(0).data[e]; });
              out.data[o] = sum / divisor;
              break;
            }
            case Op::AvgPool2DBack:
              each([&](size_t e) { out.data[e] += arg(0).data[o] / divisor; });
              break;
            default: { // the maxima's share
              const Tensor &x = arg(0);
              double y = arg(1).data[o], ties = 0, sum = 0;
              each([&](size_t e) { ties += x.data[e] == y ? 1 : 0; });
              if (n.op == Op::MaxPool2DBack)
                each([&](size_t e) { out.data[e] += x.data[e] == y ? arg(2).data[o] / ties : 0.0; });
              else {
                each([&](size_t e) { sum += x.data[e] == y ? arg(2).data[e] : 0.0; });
                out.data[o] = sum / ties;
              }
              break;
            }
            }
          }
      break;
    }
    case Op::Reshape:
      out.data = arg(0).data;
      break;
    case Op::Loop: {
      // The body once per step, the carries passed on, each step's results stacked.
      const LoopAttrs &la = n.attrs.loop;
      const Function &body = f.bodies[static_cast<size_t>(la.body)];
      size_t nc = static_cast<size_t>(la.carries), ns = static_cast<size_t>(la.sequences);
      size_t nr = body.results.size();
      std::vector<Tensor> &res = loops[i];
      res.resize(nr + nc);
      for (size_t k = 0; k < nr + nc; ++k) {
        res[k].dims = concrete(loopResultShape(f, static_cast<int>(i), static_cast<int>(k)), batch);
        res[k].data.assign(static_cast<size_t>(count(res[k].dims)), 0.0);
      }
      std::map<std::string, Tensor> in;
      std::vector<int> ids = body.inputs();
      for (size_t k = 0; k < ids.size(); ++k) {
        Tensor &x = in[body.nodes[ids[k]].attrs.name];
        x.dims = concrete(body.nodes[ids[k]].shape, batch);
        x.data.assign(static_cast<size_t>(count(x.dims)), 0.0);
        if (k < nc || k >= nc + ns)
          x.data = arg(static_cast<int>(k)).data;
      }
      for (int64_t s = 0; s < la.steps; ++s) {
        int64_t t = la.reverse ? la.steps - 1 - s : s;
        for (size_t k = nc; k < nc + ns; ++k)
          stepSlice(f.nodes[n.operands[k]].shape, v[n.operands[k]], in[body.nodes[ids[k]].attrs.name], t, false);
        std::vector<Tensor> bv = evaluate(body, in, batch);
        for (size_t r = 0; r < nr; ++r) {
          Tensor &y = bv[static_cast<size_t>(body.results[r].value)];
          if (r < nc) {
            in[body.nodes[ids[r]].attrs.name].data = y.data;
            res[r].data = y.data;
            stepSlice(loopResultShape(f, static_cast<int>(i), static_cast<int>(nr + r)), res[nr + r], y, t, true);
          } else
            stepSlice(loopResultShape(f, static_cast<int>(i), static_cast<int>(r)), res[r], y, t, true);
        }
      }
      out.data.assign(1, static_cast<double>(la.steps));
      break;
    }
    case Op::LoopResult:
      out.data = loops.at(n.operands[0]).at(static_cast<size_t>(n.attrs.offset)).data;
      break;
    }
  }
  return v;
}

std::map<std::string, Tensor> run(const Function &f, const std::map<std::string, Tensor> &inputs, int64_t batch) {
  std::vector<Tensor> v = evaluate(f, inputs, batch);
  std::map<std::string, Tensor> out;
  for (const Result &r : f.results)
    out[r.name] = v[r.value];
  return out;
}

double centralDifference(const Function &f, std::map<std::string, Tensor> &inputs, int64_t batch,
                         const std::string &name, size_t j) {
  std::vector<double> &w = inputs.at(name).data;
  double saved = w[j], h = 1e-6 * std::max(1.0, std::fabs(saved));
  auto value = [&](double x) {
    w[j] = x;
    return evaluate(f, inputs, batch)[static_cast<size_t>(f.results.at(0).value)].data.at(0);
  };
  double up = value(saved + h), down = value(saved - h);
  w[j] = saved;
  return (up - down) / (2 * h);
}

} // namespace soma::interp
