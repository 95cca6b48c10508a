#include "JitHarness.h"

#include "codegen/Jit.h"
#include "codegen/KernelEmitter.h"
#include "soma/Session.h"
#include "transforms/Plan.h"

#include <gtest/gtest.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

namespace soma::test {

struct JitFunction::Impl {
  ir::Function f;
  transforms::Schedule schedule;
  std::vector<transforms::KernelPlan> plans;
  rt::FunctionLayout layout;
  std::unique_ptr<codegen::Jit> jit;
  void (*entry)(void *) = nullptr;
};

JitFunction::JitFunction(const ir::Function &f, const std::string &targetName) : impl_(std::make_unique<Impl>()) {
  impl_->f = f;
  impl_->f.name = "fn";
  std::optional<codegen::TargetInfo> named = codegen::namedTarget(targetName);
  EXPECT_TRUE(named.has_value()) << targetName;
  codegen::TargetInfo target = named.value_or(codegen::hostTarget());
  impl_->schedule = transforms::schedule(impl_->f);
  impl_->plans = transforms::planKernels(impl_->f, impl_->schedule, codegen::machine(target));
  impl_->layout = transforms::layout(impl_->f, impl_->schedule, impl_->plans);
  auto ctx = std::make_unique<llvm::LLVMContext>();
  auto module = codegen::emitModule(*ctx, {{&impl_->f, &impl_->schedule, &impl_->plans}}, target);
  codegen::optimize(*module, target);
  std::string error; // the path `soma run` takes: an object, loaded by the JIT
  std::string object = codegen::objectCode(*module, target, error);
  EXPECT_EQ(error, "");
  impl_->jit = codegen::Jit::create(error);
  EXPECT_EQ(error, "");
  EXPECT_EQ(impl_->jit->addObject(object), "");
  impl_->entry = reinterpret_cast<void (*)(void *)>(impl_->jit->lookup("fn", error));
  EXPECT_EQ(error, "");
}

JitFunction::~JitFunction() = default;

std::map<std::string, std::vector<float>> JitFunction::run(const std::map<std::string, interp::Tensor> &inputs,
                                                           int64_t batch) {
  rt::BoundFunction bound(impl_->layout, impl_->entry, batch);
  std::map<std::string, rt::FloatBuffer> buffers;
  for (const auto &[name, t] : inputs) {
    rt::FloatBuffer &buf = buffers[name] = rt::FloatBuffer(t.data.size());
    for (size_t i = 0; i < t.data.size(); ++i)
      buf[i] = static_cast<float>(t.data[i]);
    bound.bind(name, buf.data());
  }
  bound.run(batch);
  std::map<std::string, std::vector<float>> out;
  for (const ir::Result &r : impl_->f.results) {
    const float *p = bound.result(r.name);
    out[r.name].assign(p, p + ir::numElements(impl_->f.nodes[r.value].shape, batch));
  }
  return out;
}

std::vector<std::vector<float>> initialParams(const LoweredModel &m, uint64_t seed) {
  std::vector<rt::TensorInfo> infos;
  for (const ParamInfo &p : m.params)
    infos.push_back(p.info());
  return rt::initialValues(infos, seed);
}

} // namespace soma::test
