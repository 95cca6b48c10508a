// Weights and checkpoints in the safetensors format: an 8-byte little-endian header length, a
// JSON header naming each tensor's dtype, shape and byte range, then the raw little-endian data.
// PyTorch (safetensors.torch.load_file), JAX and NumPy users read it directly. Every failure is
// an error message naming the file; writing goes through a temporary file and a rename, so an
// interrupted save never destroys the previous file.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace soma::rt {

struct NamedTensor {
  enum class DType { F32, I64 } dtype = DType::F32;
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> f32;   // when F32
  std::vector<int64_t> i64; // when I64
  int64_t elements() const;
};

struct TensorFile {
  std::map<std::string, std::string> metadata; // the header's "__metadata__" (strings only)
  std::vector<NamedTensor> tensors;            // in file order
  const NamedTensor *find(const std::string &name) const;
};

// Returns "" or an error ("PATH: error: ...").
std::string writeSafetensors(const std::string &path, const TensorFile &file);

// Writes the parts, in order, to PATH.tmp, flushes it to disk and renames it over PATH, so that
// PATH always holds a whole file (the old one if the process dies first). Returns "" or an error.
struct FilePart {
  const void *data;
  size_t size;
};
// `tmp` names the temporary file instead of PATH.tmp (writers that may run at once each need
// their own).
std::string writeFileAtomically(const std::string &path, const std::vector<FilePart> &parts,
                                const std::string &tmp = "");
std::string readSafetensors(const std::string &path, TensorFile &out);

} // namespace soma::rt
