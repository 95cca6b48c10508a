// LLVM plumbing; the only file that includes the pass builder and ORC headers (they are
// expensive to compile). Symbols the generated code calls are defined explicitly, so the JIT
// works in any executable that links the runtime, exported or not.
#include "codegen/Jit.h"

#include "soma/runtime.h"

#include <deque>
#include <llvm/Analysis/TargetLibraryInfo.h>
#include <llvm/Bitcode/BitcodeWriter.h>
#include <llvm/Config/llvm-config.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Passes/StandardInstrumentations.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/SHA256.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/TargetParser/Host.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <thread>

namespace soma::codegen {

namespace {

void initLLVM() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
  });
}

std::unique_ptr<llvm::TargetMachine> targetMachine(const TargetInfo &t) {
  std::string err;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(t.triple, err);
  if (!target)
    return nullptr;
  llvm::TargetOptions opts;
  return std::unique_ptr<llvm::TargetMachine>(target->createTargetMachine(
      t.triple, t.cpu, t.features, opts, llvm::Reloc::PIC_, llvm::CodeModel::Small, llvm::CodeGenOptLevel::Aggressive));
}

} // namespace

TargetInfo hostTarget() {
  initLLVM();
  TargetInfo t;
  t.triple = llvm::sys::getProcessTriple();
  t.cpu = llvm::sys::getHostCPUName().str();
  std::string features;
  bool avx512 = false;
  for (const auto &f : llvm::sys::getHostCPUFeatures()) {
    features += (features.empty() ? "" : ",") + std::string(f.getValue() ? "+" : "-") + f.getKey().str();
    avx512 |= f.getKey() == "avx512f" && f.getValue();
  }
  t.features = features;
  if (long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE); l2 > 0) // 0 where the system does not say
    t.l2Bytes = l2;
  if (!avx512) { // AVX2 or less: 8-lane vectors, 16 registers
    t.preferVectorWidth = 256;
    t.vectorRegisters = 16;
  }
  if (auto tm = targetMachine(t))
    t.dataLayout = tm->createDataLayout().getStringRepresentation();
  return t;
}

std::optional<TargetInfo> namedTarget(const std::string &name) {
  if (name == "native")
    return hostTarget();
  if (name != "x86-64-v3" && name != "x86-64-v4")
    return std::nullopt;
  initLLVM();
  TargetInfo t;
  t.triple = llvm::sys::getDefaultTargetTriple();
  t.cpu = name; // the levels of the x86-64 psABI; the features follow from the cpu
  t.preferVectorWidth = name == "x86-64-v4" ? 512 : 256;
  t.vectorRegisters = name == "x86-64-v4" ? 32 : 16;
  t.l2Bytes = name == "x86-64-v4" ? int64_t{1} << 20 : int64_t{512} << 10;
  if (auto tm = targetMachine(t))
    t.dataLayout = tm->createDataLayout().getStringRepresentation();
  return t;
}

void optimize(llvm::Module &m, const TargetInfo &target) {
  auto tm = targetMachine(target);
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  // No loop unrolling by LLVM (partial, runtime or full). The kernels' register tiles and vector
  // rows are unrolled by the emitter already; what LLVM unrolled besides were the loops around
  // them (over samples, channels, taps), which made the code a third larger and cost about a
  // quarter of the compile time. Step times stayed within noise on the sweep and the examples;
  // only the phase merges and splits (elementwise.nest, a few percent of S14) lost up to 30%.
  // Loop strength reduction stays: it is a quarter of the machine code's compile time (75 ms of a
  // ResNeXt-style CNN's 625), but without it the VGG-style CNN, the ResNet-style stem and the
  // wide MLP of the sweep trained 13-30% slower.
  llvm::PipelineTuningOptions pto;
  pto.LoopUnrolling = false;
  // The instrumentation makes the passes skip functions marked optnone (the passes' drivers).
  llvm::PassInstrumentationCallbacks pic;
  llvm::StandardInstrumentations si(m.getContext(), false);
  si.registerCallbacks(pic, &mam);
  llvm::PassBuilder pb(tm.get(), pto, std::nullopt, &pic);
  llvm::Triple triple(target.triple);
  llvm::TargetLibraryInfoImpl tlii(triple);
  tlii.addVectorizableFunctionsFromVecLib(llvm::TargetLibraryInfoImpl::LIBMVEC_X86, triple);
  // LLVM's libmvec table has expf and logf at 4 and 8 lanes only; glibc (2.35 on) also has their
  // AVX-512 16-lane variants and vector expm1f, erff, erfcf, tanhf and log1pf, which would otherwise stay
  // scalar calls inside vector loops.
  std::vector<llvm::VecDesc> vector;
  std::deque<std::string> names; // VecDesc holds references; tlii lives as long as this
  bool avx512 = target.features.find("+avx512f") != std::string::npos || target.cpu == "x86-64-v4";
  for (const char *fn : {"expf", "logf", "expm1f", "erff", "erfcf", "tanhf", "log1pf"}) {
    bool inTable = std::string(fn) == "expf" || std::string(fn) == "logf";
    for (auto [lanes, isa] : {std::pair{4, "b"}, {8, "d"}, {16, "e"}}) {
      if ((inTable && lanes < 16) || (lanes == 16 && !avx512))
        continue;
      const std::string &name = names.emplace_back(std::string("_ZGV") + isa + "N" + std::to_string(lanes) + "v_" + fn);
      const std::string &abi = names.emplace_back("_ZGV_LLVM_N" + std::to_string(lanes) + "v");
      vector.push_back({fn, name, llvm::ElementCount::getFixed(lanes), false, abi});
    }
  }
  tlii.addVectorizableFunctions(vector);
  fam.registerPass([&] { return llvm::TargetLibraryAnalysis(tlii); });
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
  mpm.run(m, mam);
}

std::string moduleText(const llvm::Module &m) {
  std::string s;
  llvm::raw_string_ostream os(s);
  m.print(os, nullptr);
  return os.str();
}

namespace {

// Machine code for `m` as assembly or as an object file; sets `error` on failure.
std::string emitFile(llvm::Module &m, const TargetInfo &target, llvm::CodeGenFileType type, std::string &error) {
  auto tm = targetMachine(target);
  llvm::SmallString<0> buf;
  llvm::raw_svector_ostream os(buf);
  llvm::legacy::PassManager pm;
  if (!tm || tm->addPassesToEmitFile(pm, os, nullptr, type)) {
    error = "no code generator for target " + target.triple + " (" + target.cpu + ")";
    return "";
  }
  pm.run(m);
  return std::string(buf.str());
}

} // namespace

std::string assemblyText(llvm::Module &m, const TargetInfo &target) {
  std::string error;
  return emitFile(m, target, llvm::CodeGenFileType::AssemblyFile, error);
}

std::string objectCode(llvm::Module &m, const TargetInfo &target, std::string &error) {
  return emitFile(m, target, llvm::CodeGenFileType::ObjectFile, error);
}

namespace {

// Part 0 keeps every definition but the kernels of other parts; kernels go, largest first (by
// instructions before optimization), to the part with the least work so far.
std::map<std::string, unsigned> assignParts(const llvm::Module &m, unsigned parts) {
  std::vector<std::pair<size_t, std::string>> kernels;
  for (const llvm::Function &f : m)
    if (!f.isDeclaration() && f.hasLocalLinkage())
      kernels.push_back({f.getInstructionCount(), f.getName().str()});
  std::stable_sort(kernels.begin(), kernels.end(), [](const auto &a, const auto &b) { return a.first > b.first; });
  std::vector<size_t> load(parts, 0);
  // The passes' drivers are optnone: the optimizer skips them and instruction selection runs at
  // -O0, about an eighth of the cost per instruction (measured with callgrind on S12).
  for (const llvm::Function &f : m)
    if (!f.isDeclaration() && !f.hasLocalLinkage())
      load[0] += f.getInstructionCount() / (f.hasOptNone() ? 8 : 1);
  std::map<std::string, unsigned> part;
  for (const auto &[size, name] : kernels) {
    unsigned best = static_cast<unsigned>(std::min_element(load.begin(), load.end()) - load.begin());
    part[name] = best;
    load[best] += size;
  }
  return part;
}

// Leaves in `m` the definitions of part `p`; the others become declarations of external symbols.
void keepPart(llvm::Module &m, const std::map<std::string, unsigned> &part, unsigned p) {
  for (llvm::Function &f : m) {
    if (f.isDeclaration())
      continue;
    auto it = part.find(f.getName().str());
    unsigned owner = it == part.end() ? 0 : it->second;
    if (owner != p)
      f.deleteBody(); // a declaration, with external linkage
    else if (f.hasLocalLinkage())
      f.setLinkage(llvm::GlobalValue::ExternalLinkage);
  }
}

} // namespace

unsigned compileThreads() { return std::clamp(std::thread::hardware_concurrency(), 1u, 8u); }

std::vector<std::string> objectCodes(llvm::Module &m,
                                     const std::function<std::unique_ptr<llvm::Module>(llvm::LLVMContext &)> &emit,
                                     const TargetInfo &target, unsigned parts, const std::function<void()> &optimized,
                                     std::string &error) {
  std::vector<std::string> objects(std::max(parts, 1u)), errors(objects.size());
  std::map<std::string, unsigned> part = assignParts(m, static_cast<unsigned>(objects.size()));
  auto compilePart = [&](llvm::Module &module, unsigned p) {
    if (objects.size() > 1)
      keepPart(module, part, p);
    optimize(module, target);
    if (p == 0)
      optimized();
    objects[p] = objectCode(module, target, errors[p]);
  };
  std::vector<std::thread> threads;
  for (unsigned p = 1; p < objects.size(); ++p)
    threads.emplace_back([&, p] {
      llvm::LLVMContext ctx; // LLVM's contexts are not shared between threads
      std::unique_ptr<llvm::Module> module = emit(ctx);
      compilePart(*module, p);
    });
  compilePart(m, 0);
  for (std::thread &t : threads)
    t.join();
  for (const std::string &e : errors)
    if (!e.empty()) {
      error = e;
      return {};
    }
  return objects;
}

std::string cacheKey(const llvm::Module &m, const TargetInfo &target, unsigned parts) {
  // Bump kCodegenVersion when the pass pipeline or the emitted records change.
  constexpr const char *kCodegenVersion = "soma-codegen-4";
  llvm::SHA256 h;
  for (const std::string &part :
       {std::string(kCodegenVersion), std::string(LLVM_VERSION_STRING), target.triple, target.cpu, target.features,
        std::to_string(target.preferVectorWidth), std::to_string(parts)}) {
    h.update(part);
    h.update(llvm::StringRef("\0", 1));
  }
  // The module as bitcode: complete as the text is, and written in a sixth of the time (65 ms
  // for the text of a ResNeXt-style CNN's step, a tenth of its compile).
  llvm::SmallVector<char, 0> bitcode;
  llvm::raw_svector_ostream os(bitcode);
  llvm::WriteBitcodeToFile(m, os);
  h.update(llvm::StringRef(bitcode.data(), bitcode.size()));
  std::array<uint8_t, 32> digest = h.final();
  static const char hex[] = "0123456789abcdef";
  std::string key;
  for (uint8_t b : digest) {
    key += hex[b >> 4];
    key += hex[b & 15];
  }
  return key;
}

struct Jit::Impl {
  std::unique_ptr<llvm::orc::LLJIT> jit;
};

Jit::Jit() : impl_(std::make_unique<Impl>()) {}
Jit::~Jit() = default;

std::unique_ptr<Jit> Jit::create(std::string &error) {
  initLLVM();
  auto jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb) {
    error = llvm::toString(jtmb.takeError());
    return nullptr;
  }
  jtmb->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  auto built = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(*jtmb)).create();
  if (!built) {
    error = llvm::toString(built.takeError());
    return nullptr;
  }
  std::unique_ptr<Jit> j(new Jit());
  j->impl_->jit = std::move(*built);
  llvm::orc::LLJIT &lj = *j->impl_->jit;
  llvm::orc::JITDylib &jd = lj.getMainJITDylib();
  auto mvec = llvm::orc::DynamicLibrarySearchGenerator::Load("libmvec.so.1", lj.getDataLayout().getGlobalPrefix());
  if (mvec)
    jd.addGenerator(std::move(*mvec));
  else
    llvm::consumeError(mvec.takeError());
  llvm::orc::SymbolMap runtime;
  auto callable = llvm::JITSymbolFlags::Exported | llvm::JITSymbolFlags::Callable;
  runtime[lj.mangleAndIntern("soma_rt_parallel_for")] = {llvm::orc::ExecutorAddr::fromPtr(&soma_rt_parallel_for),
                                                         callable};
  runtime[lj.mangleAndIntern("soma_rt_loop_begin")] = {llvm::orc::ExecutorAddr::fromPtr(&soma_rt_loop_begin), callable};
  runtime[lj.mangleAndIntern("soma_rt_loop_end")] = {llvm::orc::ExecutorAddr::fromPtr(&soma_rt_loop_end), callable};
  if (auto err = jd.define(llvm::orc::absoluteSymbols(runtime))) {
    error = llvm::toString(std::move(err));
    return nullptr;
  }
  return j;
}

std::string Jit::addObject(const std::string &object) {
  auto buffer = llvm::MemoryBuffer::getMemBufferCopy(object, "soma-model.o");
  if (auto err = impl_->jit->addObjectFile(std::move(buffer)))
    return llvm::toString(std::move(err));
  return "";
}

void *Jit::lookup(const std::string &name, std::string &error) {
  auto sym = impl_->jit->lookup(name);
  if (!sym) {
    error = llvm::toString(sym.takeError());
    return nullptr;
  }
  return sym->toPtr<void *>();
}

} // namespace soma::codegen
