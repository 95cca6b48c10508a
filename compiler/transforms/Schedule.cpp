// 1. Liveness: nodes reachable from the results.
// 2. Materialize inputs, results, reductions, row and window ops, products, the operands of
//    views and window ops, and any value used more than once or by a product; everything else is
//    inlined into its single consumer.
//    Constants and broadcasts or one-hots of a buffer are inlined into every user, and so is one
//    cheap op over buffers (x - mean) whose users are all elementwise or reduction kernels:
//    recomputing it costs less than writing it and reading it back (batchnorm's statistics and
//    gradients make several passes over such values).
// 3. Fuse each product used once into the elementwise kernel that consumes it, when the path
//    from the product to that kernel's root keeps the product's shape (no broadcast): matrix
//    products, convolutions that keep their output rows in registers, and max pooling.
// 4. Emit kernels in node order; give every materialized value a slot.
// 5. An elementwise kernel (or a product's epilogue) whose value only one later elementwise
//    kernel of its shape reads runs inside that kernel: an optimizer's moments and the
//    parameter's update in one pass (for momentum SGD, in the gradient's product).
// 6. A product that only such a one-pass update reads, at the update's own index, runs the
//    update as its epilogue: Adam's gradient never goes to memory.
#include "transforms/Schedule.h"

#include <algorithm>
#include <fmt/format.h>
#include <ostream>

namespace soma::transforms {

using namespace ir;

namespace {

bool sameIndexElementwise(const Node &n) { return opKind(n.op) == OpKind::Elementwise && !opIsIndexMap(n.op); }

// The node whose buffer v is: itself, or through views (reshapes) the one they reinterpret.
int bufferOf(const Function &f, int v) {
  while (opKind(f.nodes[v].op) == OpKind::View)
    v = f.nodes[v].operands[0];
  return v;
}

// Appends to `reads` the materialized nodes that the inlined tree of `v` loads.
void collectReads(const Function &f, const Schedule &s, int v, std::vector<int> &reads, bool isRoot, int product) {
  const Node &n = f.nodes[v];
  if (!isRoot && s.materialized[v]) {
    if (std::find(reads.begin(), reads.end(), v) == reads.end())
      reads.push_back(v);
    return;
  }
  if (v == product) {
    for (int o : n.operands)
      collectReads(f, s, o, reads, false, -1);
    return;
  }
  for (int o : n.operands)
    collectReads(f, s, o, reads, false, product);
}

// Whether the inlined tree of `v` reads `target` only at its own index: through elementwise math,
// never under an index map (broadcast, transpose, pad, slice, one-hot).
bool readsAtOwnIndex(const Function &f, const Schedule &s, int v, int target, bool isRoot) {
  if (v == target)
    return true;
  if (!isRoot && s.materialized[v])
    return true;
  const Node &n = f.nodes[v];
  if (opIsIndexMap(n.op) || opKind(n.op) != OpKind::Elementwise) {
    std::vector<int> reads;
    collectReads(f, s, v, reads, isRoot, -1);
    return std::find(reads.begin(), reads.end(), target) == reads.end();
  }
  return std::all_of(n.operands.begin(), n.operands.end(),
                     [&](int o) { return readsAtOwnIndex(f, s, o, target, false); });
}

} // namespace

Schedule schedule(const Function &f) {
  size_t n = f.nodes.size();
  Schedule s;
  s.live.assign(n, false);
  s.materialized.assign(n, false);
  s.slot.assign(n, -1);
  std::vector<int> uses(n, 0), user(n, -1);
  std::vector<std::vector<int>> users(n);
  std::vector<bool> isResult(n, false);
  for (const Result &r : f.results) {
    s.live[r.value] = true;
    isResult[r.value] = true;
    if (r.updates >= 0)
      s.live[r.updates] = true;
  }
  for (size_t i = n; i-- > 0;)
    if (s.live[i])
      for (int o : f.nodes[i].operands) {
        s.live[o] = true;
        ++uses[o];
        user[o] = static_cast<int>(i);
        users[o].push_back(static_cast<int>(i));
      }

  // Step 2. What recomputing costs less than a buffer: one cheap op (no transcendental, no index
  // map) whose operands are buffers, constants or broadcasts of buffers (none updated in place,
  // which a later kernel would read overwritten), used by at most kMaxRecomputed elementwise or
  // reduction kernels of its shape (the same elements again, never more of them).
  constexpr int kMaxRecomputed = 4;
  std::vector<bool> updatedInPlace(n, false); // an input, or a view of one, overwritten by a result
  for (const Result &r : f.results)
    if (r.updates >= 0)
      updatedInPlace[r.updates] = true;
  for (size_t i = 0; i < n; ++i)
    updatedInPlace[i] = updatedInPlace[static_cast<size_t>(bufferOf(f, static_cast<int>(i)))];
  auto recomputable = [&](size_t i) {
    const Node &node = f.nodes[i];
    bool cheapOp = node.op == Op::Add || node.op == Op::Sub || node.op == Op::Mul || node.op == Op::Neg ||
                   node.op == Op::Relu || node.op == Op::Step;
    if (!cheapOp || isResult[i] || uses[i] > kMaxRecomputed)
      return false;
    for (int o : node.operands) {
      const Node &on = f.nodes[o];
      bool buffer = s.materialized[o] && opKind(on.op) != OpKind::Contraction;
      bool constant = on.op == Op::Fill || on.op == Op::Constant ||
                      (on.op == Op::Broadcast && s.materialized[on.operands[0]] && !updatedInPlace[on.operands[0]]);
      if (!(buffer || constant) || updatedInPlace[o])
        return false;
    }
    return std::all_of(users[i].begin(), users[i].end(), [&](int u) {
      OpKind k = opKind(f.nodes[u].op);
      return (sameIndexElementwise(f.nodes[u]) && f.nodes[u].shape == node.shape) || k == OpKind::Reduce;
    });
  };
  for (size_t i = 0; i < n; ++i) {
    if (!s.live[i])
      continue;
    const Node &node = f.nodes[i];
    bool m = isResult[i] || node.op == Op::Input || opKind(node.op) == OpKind::Reduce ||
             opKind(node.op) == OpKind::Row || opKind(node.op) == OpKind::Window ||
             opKind(node.op) == OpKind::Contraction || opKind(node.op) == OpKind::View ||
             opKind(node.op) == OpKind::Loop;
    // A broadcast that several elementwise or reduction kernels read: its operand in memory
    // (fewer elements: attention's transposed keys [B, h, d, t] rather than their copies
    // [B, h, t, d, t]), the copies recomputed in each. (Products and windows read theirs from
    // memory.)
    const Node &from = f.nodes[node.operands.empty() ? 0 : node.operands[0]];
    auto inlinedInto = [&](int u) {
      OpKind uk = opKind(f.nodes[u].op);
      return uk == OpKind::Elementwise || uk == OpKind::Reduce || uk == OpKind::Row;
    };
    if (node.op == Op::Broadcast && !isResult[i] && uses[i] > 1 && opKind(from.op) != OpKind::Leaf &&
        !from.shape.empty() && // a scalar is as cheap recomputed
        std::all_of(users[i].begin(), users[i].end(), inlinedInto))
      s.materialized[node.operands[0]] = true;
    bool cheap = node.op == Op::Fill || node.op == Op::Constant ||
                 ((node.op == Op::Broadcast || node.op == Op::OneHot) && s.materialized[node.operands[0]]);
    if (cheap && !isResult[i])
      m = false; // constants and index maps of a buffer are recomputed in each user
    else if (!m && uses[i] != 1)
      m = !recomputable(i);
    else if (!m) {
      OpKind uk = opKind(f.nodes[user[i]].op);
      m = uk != OpKind::Elementwise && uk != OpKind::Reduce && uk != OpKind::Row;
    }
    s.materialized[i] = m;
  }
  for (size_t i = 0; i < n; ++i) // a view needs its operand in memory, a window op or a loop its operands
    if (s.live[i] && opKind(f.nodes[i].op) == OpKind::View)
      s.materialized[f.nodes[i].operands[0]] = true;
    else if (s.live[i] && (opKind(f.nodes[i].op) == OpKind::Window || f.nodes[i].op == Op::Loop))
      for (int o : f.nodes[i].operands)
        s.materialized[o] = true;

  // Step 3: products fused into the kernel of their elementwise consumer.
  std::vector<int> fusedInto(n, -1); // root -> the product it runs as epilogue of
  for (size_t i = 0; i < n; ++i) {
    const Node &mm = f.nodes[i];
    bool product = mm.op == Op::MatMul || (mm.op == Op::Conv2D && convAlongRows(f, static_cast<int>(i))) ||
                   (opKind(mm.op) == OpKind::Window && poolTakesEpilogue(f, static_cast<int>(i)));
    // A product over rows of more axes ([B, T, k] x [k, n]) indexes its output by row and column
    // alone, which an epilogue's broadcasts cannot read: it takes none.
    if (!s.live[i] || !product || isResult[i] || uses[i] != 1 || (mm.op == Op::MatMul && mm.shape.size() > 2))
      continue;
    int u = user[i];
    bool ok = true;
    while (ok) {
      const Node &un = f.nodes[u];
      ok = sameIndexElementwise(un) && un.shape == mm.shape;
      if (!ok || s.materialized[u])
        break;
      ok = uses[u] == 1; // a value recomputed in several kernels needs the product in memory
      u = user[u];
    }
    if (!ok || fusedInto[u] >= 0)
      continue;
    // The product now runs at u's place in the node order: no in-place update up to there (its own
    // epilogue's included) may overwrite a buffer it reads, under any view. (A parameter's
    // gradient can read another parameter, updated in between: the gradient of u in (w @ u).)
    for (const Result &r : f.results)
      if (r.updates >= 0 && r.value > static_cast<int>(i) && r.value <= u &&
          (bufferOf(f, mm.operands[0]) == r.updates || bufferOf(f, mm.operands[1]) == r.updates))
        ok = false;
    if (!ok)
      continue;
    fusedInto[u] = static_cast<int>(i);
    s.materialized[i] = false;
  }

  // Step 4.
  for (size_t i = 0; i < n; ++i) {
    if (!s.live[i] || !s.materialized[i])
      continue;
    const Node &node = f.nodes[i];
    int v = static_cast<int>(i);
    if (node.op == Op::Input) {
      s.slot[i] = s.numSlots++;
      s.slotNode.push_back(v);
      continue;
    }
    if (opKind(node.op) == OpKind::View) {
      s.slot[i] = s.slot[node.operands[0]];
      continue;
    }
    if (node.op == Op::LoopResult) { // written by its loop's kernel
      for (Kernel &k : s.kernels)
        if (k.root == node.operands[0])
          k.alsoRoots.push_back(v);
      s.slot[i] = s.numSlots++;
      s.slotNode.push_back(v);
      continue;
    }
    Kernel k;
    k.root = v;
    if (fusedInto[i] >= 0) {
      Op op = f.nodes[fusedInto[i]].op;
      k.kind = op == Op::MatMul ? Kernel::Kind::MatMul : op == Op::Conv2D ? Kernel::Kind::Conv : Kernel::Kind::Window;
      k.product = fusedInto[i];
    } else if (node.op == Op::MatMul) {
      k.kind = Kernel::Kind::MatMul;
      k.product = v;
    } else if (opKind(node.op) == OpKind::Contraction) {
      k.kind = Kernel::Kind::Conv;
    } else if (opKind(node.op) == OpKind::Reduce) {
      k.kind = Kernel::Kind::Reduce;
    } else if (opKind(node.op) == OpKind::Row) {
      k.kind = Kernel::Kind::Row;
    } else if (opKind(node.op) == OpKind::Window) {
      k.kind = Kernel::Kind::Window;
    } else if (node.op == Op::Loop) {
      k.kind = Kernel::Kind::Loop;
    } else {
      k.kind = Kernel::Kind::Elementwise;
    }
    collectReads(f, s, v, k.reads, true, k.product);
    s.kernels.push_back(k);
    s.slot[i] = s.numSlots++;
    s.slotNode.push_back(v);
  }
  // Each body's schedule, and the slots here its buffers take.
  for (const Function &body : f.bodies)
    s.bodies.push_back(schedule(body));
  s.loopSlots.resize(f.bodies.size());
  auto newSlot = [&] {
    s.slotNode.push_back(-1);
    return s.numSlots++;
  };
  for (const Kernel &k : s.kernels) {
    if (k.kind != Kernel::Kind::Loop)
      continue;
    const LoopAttrs &la = f.nodes[k.root].attrs.loop;
    const Schedule &bs = s.bodies[static_cast<size_t>(la.body)];
    LoopSlots &ls = s.loopSlots[static_cast<size_t>(la.body)];
    for (int b = 0; b < bs.numSlots; ++b)
      ls.body.push_back(bs.slotNode[b] < 0 ||
                                f.bodies[static_cast<size_t>(la.body)].nodes[bs.slotNode[b]].op == Op::Input
                            ? -1
                            : newSlot());
    for (int c = 0; c < la.carries; ++c)
      ls.carries.push_back(newSlot());
    for (int q = 0; q < la.sequences; ++q)
      ls.slices.push_back(newSlot());
  }
  // In-place updates write straight into the parameter's buffer.
  for (const Result &r : f.results)
    if (r.updates >= 0) {
      int old = s.slot[r.value];
      s.slot[r.value] = s.slot[r.updates];
      s.slotNode[old] = -1; // the slot stays numbered but unused
    }

  // Steps 5 and 6 move kernel a, whose root r kernel b reads, into kernel b.
  auto readsSlot = [&](const Kernel &k, int slot) {
    return std::any_of(k.reads.begin(), k.reads.end(), [&](int x) { return s.slot[x] == slot; });
  };
  auto rootsOf = [](const Kernel &k) {
    std::vector<int> roots = k.alsoRoots;
    roots.push_back(k.root);
    return roots;
  };
  // Whether that is safe: b reads r at its own index, and not r's buffer under another name (the
  // state's input, in place); no other kernel reads r (or, in place, its buffer); nothing between
  // a and b writes what a reads; and when a's loop nest is a product, which reads whole rows and
  // columns, b does not overwrite what it reads.
  auto movable = [&](size_t a, size_t b, int r) {
    const Kernel &ka = s.kernels[a], &kb = s.kernels[b];
    std::vector<int> roots = rootsOf(kb);
    bool ok = std::all_of(roots.begin(), roots.end(), [&](int x) { return readsAtOwnIndex(f, s, x, r, true); }) &&
              std::none_of(kb.reads.begin(), kb.reads.end(), [&](int x) { return x != r && s.slot[x] == s.slot[r]; });
    for (size_t k = a + 1; k < s.kernels.size() && ok; ++k) {
      if (k == b)
        continue;
      ok = !readsSlot(s.kernels[k], s.slot[r]);
      if (k < b)
        for (int w : rootsOf(s.kernels[k]))
          for (int x : ka.reads)
            ok = ok && s.slot[x] != s.slot[w];
    }
    if (ka.kind == Kernel::Kind::MatMul)
      for (int x : ka.reads)
        for (int root : roots)
          ok = ok && s.slot[x] != s.slot[root];
    return ok;
  };
  // b takes over a's reads (but r, now computed in b) and a's loop nest when a is a product.
  auto moveInto = [&](size_t a, size_t b, int r) {
    const Kernel &ka = s.kernels[a];
    Kernel &kb = s.kernels[b];
    std::vector<int> reads = ka.reads;
    for (int x : kb.reads)
      if (x != r && std::find(reads.begin(), reads.end(), x) == reads.end())
        reads.push_back(x);
    kb.reads = reads;
    if (ka.kind == Kernel::Kind::MatMul) {
      kb.kind = Kernel::Kind::MatMul;
      kb.product = ka.product;
    }
    s.kernels.erase(s.kernels.begin() + static_cast<std::ptrdiff_t>(a));
  };
  // The kernel before b whose root is r (b when there is none).
  auto writerOf = [&](size_t b, int r) {
    size_t a = 0;
    while (a < b && s.kernels[a].root != r)
      ++a;
    return a;
  };

  // Step 5.
  for (size_t b = 0; b < s.kernels.size(); ++b) {
    for (bool merged = true; merged;) {
      merged = false;
      if (s.kernels[b].kind != Kernel::Kind::Elementwise)
        break;
      for (int r : s.kernels[b].reads) {
        size_t a = writerOf(b, r);
        if (a == b || f.nodes[r].shape != f.nodes[s.kernels[b].root].shape)
          continue;
        // a: elementwise, or a product's epilogue (momentum computed where its gradient is)
        const Kernel &ka = s.kernels[a];
        bool epilogue = ka.kind == Kernel::Kind::MatMul && ka.product != r && f.nodes[ka.product].shape.size() <= 2;
        if ((ka.kind != Kernel::Kind::Elementwise && !epilogue) || !movable(a, b, r))
          continue;
        std::vector<int> roots = ka.alsoRoots; // a's values first, then r, then b's own
        roots.push_back(r);
        roots.insert(roots.end(), s.kernels[b].alsoRoots.begin(), s.kernels[b].alsoRoots.end());
        s.kernels[b].alsoRoots = roots;
        moveInto(a, b, r);
        --b;
        merged = true;
        break;
      }
    }
  }

  // Step 6.
  for (size_t b = 0; b < s.kernels.size(); ++b) {
    if (s.kernels[b].kind != Kernel::Kind::Elementwise || s.kernels[b].alsoRoots.empty())
      continue;
    for (int r : s.kernels[b].reads) {
      size_t a = writerOf(b, r);
      if (a == b || s.kernels[a].kind != Kernel::Kind::MatMul || s.kernels[a].product != r || isResult[r] ||
          f.nodes[r].shape != f.nodes[s.kernels[b].root].shape || f.nodes[r].shape.size() > 2 || !movable(a, b, r))
        continue;
      moveInto(a, b, r);
      s.materialized[r] = false;
      s.slotNode[s.slot[r]] = -1; // the slot stays numbered but unused
      s.slot[r] = -1;
      --b; // b's kernel moved down one place
      break;
    }
  }
  return s;
}

bool poolOnLanes(const Function &f, int pool) {
  const Node &n = f.nodes[pool];
  const Pool2D &p = n.attrs.pool;
  const Shape &x = f.nodes[n.operands[0]].shape;
  bool square = p.kernel[0] == p.kernel[1] && p.kernel == p.stride && p.padding == std::array<int64_t, 2>{0, 0} &&
                x.size() == 4 && p.out[0] * p.kernel[0] <= x[2] && p.out[1] * p.kernel[1] <= x[3];
  switch (n.op) {
  case Op::MaxPool2D:
    return square;
  case Op::MaxPool2DBack:
    return square && poolTiles(p, x[2], x[3]);
  default:
    return false;
  }
}

bool poolTakesEpilogue(const Function &f, int pool) {
  Op op = f.nodes[pool].op;
  return (op != Op::MaxPool2DBack && op != Op::AvgPool2DBack) || poolOnLanes(f, pool);
}

bool convAlongRows(const Function &f, int conv) {
  const Node &n = f.nodes[conv];
  const Shape &w = n.op == Op::Conv2DBackFilter ? n.shape : f.nodes[n.operands[1]].shape;
  return depthwiseConv(f, conv) || (n.attrs.conv.stride == 1 && w[2] * w[3] <= kMaxRowTaps);
}

bool depthwiseConv(const Function &f, int conv) {
  const Node &n = f.nodes[conv];
  const Shape &w = n.op == Op::Conv2DBackFilter ? n.shape : f.nodes[n.operands[1]].shape;
  return n.attrs.conv.groups > 1 && w[1] == 1;
}

const char *kernelKindName(Kernel::Kind kind) {
  switch (kind) {
  case Kernel::Kind::Elementwise:
    return "elementwise";
  case Kernel::Kind::Reduce:
    return "reduce";
  case Kernel::Kind::Row:
    return "row";
  case Kernel::Kind::Window:
    return "window";
  case Kernel::Kind::MatMul:
    return "matmul";
  case Kernel::Kind::Conv:
    return "conv";
  case Kernel::Kind::Loop:
    return "loop";
  }
  return "";
}

void printKernel(const Function &f, const Kernel &kn, int index, std::ostream &os) {
  os << fmt::format("kernel {} {} %{} {}", index, kernelKindName(kn.kind), kn.root,
                    formatShape(f.nodes[kn.root].shape));
  if (kn.product >= 0 && kn.product != kn.root)
    os << fmt::format(" (epilogue of {} %{})", opName(f.nodes[kn.product].op), kn.product);
  for (size_t r = 0; r < kn.alsoRoots.size(); ++r)
    os << (r ? fmt::format(", %{}", kn.alsoRoots[r]) : fmt::format(" (also %{}", kn.alsoRoots[r]));
  if (!kn.alsoRoots.empty())
    os << ")";
  os << " reads";
  for (int r : kn.reads)
    os << " %" << r;
  os << "\n";
}

rt::FunctionLayout slotLayout(const Function &f, const Schedule &s) {
  rt::FunctionLayout out;
  out.slots.resize(static_cast<size_t>(s.numSlots));
  // Live interval of each slot in kernel indices: [first write, last read].
  size_t nk = s.kernels.size();
  for (size_t k = 0; k < nk; ++k) {
    std::vector<int> written = s.kernels[k].alsoRoots;
    written.push_back(s.kernels[k].root);
    for (int root : written) {
      rt::FunctionLayout::Slot &w = out.slots[static_cast<size_t>(s.slot[root])];
      if (w.first < 0)
        w.first = static_cast<int64_t>(k);
      w.last = std::max<int64_t>(w.last, static_cast<int64_t>(k));
    }
    for (int r : s.kernels[k].reads) {
      rt::FunctionLayout::Slot &read = out.slots[static_cast<size_t>(s.slot[r])];
      read.last = std::max<int64_t>(read.last, static_cast<int64_t>(k));
    }
  }
  for (const Result &r : f.results)
    out.slots[static_cast<size_t>(s.slot[r.value])].last = static_cast<int64_t>(nk);
  for (int sl = 0; sl < s.numSlots; ++sl) {
    rt::FunctionLayout::Slot &slot = out.slots[static_cast<size_t>(sl)];
    int node = s.slotNode[sl];
    slot.bound = node < 0 || f.nodes[node].op == Op::Input;
    if (node < 0)
      continue;
    const Shape &shape = f.nodes[node].shape;
    slot.fixed = numElements(shape, 0);
    slot.perSample = numElements(shape, 1) - slot.fixed;
    if (f.nodes[node].op == Op::Input)
      out.inputs.push_back({f.nodes[node].attrs.name, sl});
  }
  for (const Result &r : f.results)
    out.results.push_back({r.name, s.slot[r.value]});
  // A loop's buffers live while it runs.
  for (size_t k = 0; k < nk; ++k) {
    if (s.kernels[k].kind != Kernel::Kind::Loop)
      continue;
    const Node &loop = f.nodes[s.kernels[k].root];
    size_t b = static_cast<size_t>(loop.attrs.loop.body);
    const Function &body = f.bodies[b];
    const LoopSlots &ls = s.loopSlots[b];
    auto own = [&](int sl, const Shape &shape) {
      rt::FunctionLayout::Slot &slot = out.slots[static_cast<size_t>(sl)];
      slot.bound = false;
      slot.fixed = numElements(shape, 0);
      slot.perSample = numElements(shape, 1) - slot.fixed;
      slot.first = slot.last = static_cast<int64_t>(k);
    };
    for (size_t j = 0; j < ls.body.size(); ++j)
      if (ls.body[j] >= 0)
        own(ls.body[j], body.nodes[s.bodies[b].slotNode[j]].shape);
    for (size_t c = 0; c < ls.carries.size(); ++c)
      own(ls.carries[c], body.nodes[c].shape);
    for (size_t q = 0; q < ls.slices.size(); ++q)
      own(ls.slices[q], body.nodes[ls.carries.size() + q].shape);
  }
  return out;
}

BufferPlan planBuffers(const Function &f, const Schedule &s, int64_t maxBatch) {
  BufferPlan plan;
  plan.arenaFloats = rt::planArena(slotLayout(f, s), maxBatch, plan.offset);
  return plan;
}

} // namespace soma::transforms
