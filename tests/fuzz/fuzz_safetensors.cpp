// The safetensors reader (weights and checkpoints) on any bytes: a file it accepts has tensors
// whose data fit their shapes exactly.
#include "MemFile.h"
#include "soma/Safetensors.h"

#include <cstdio>
#include <cstdlib>

using namespace soma::rt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  soma::fuzz::MemFile file(data, size);
  TensorFile t;
  if (!readSafetensors(file.path(), t).empty())
    return 0;
  for (const NamedTensor &x : t.tensors) {
    uint64_t n = 1;
    for (int64_t d : x.shape)
      n *= static_cast<uint64_t>(d);
    if (n != (x.dtype == NamedTensor::DType::F32 ? x.f32.size() : x.i64.size())) {
      std::fprintf(stderr, "tensor '%s' has data that does not fit its shape\n", x.name.c_str());
      std::abort();
    }
  }
  return 0;
}
