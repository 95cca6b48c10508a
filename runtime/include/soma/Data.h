// Data sets for training and evaluation: IDX (MNIST's format) and CSV loaders, seeded
// shuffling and batching. Every failure is an error message naming the file; nothing throws.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace soma::rt {

struct Dataset {
  std::vector<int64_t> sampleDims; // per-sample shape, e.g. {28, 28}
  int64_t sampleSize = 0;          // product of sampleDims
  int64_t count = 0;
  std::vector<float> features;     // count * sampleSize, row-major
  std::vector<float> labels;       // count
};

// Images (unsigned bytes, scaled to [0, 1]) and labels (unsigned bytes). Returns "" or an error.
std::string loadIdx(const std::string &images, const std::string &labels, Dataset &out);
// One sample a row; `labelColumn` (-1 for the last) is the label, the rest are features.
std::string loadCsv(const std::string &path, int64_t labelColumn, bool header, Dataset &out);

// Checks labels are integers in [0, classes). Returns "" or an error naming `source`.
std::string checkClassLabels(const Dataset &d, int64_t classes, const std::string &source);

// A small, fast, portable generator (splitmix64 seeding a xoshiro256**), so that a seed gives
// the same run on every machine.
class Rng {
public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform(); // [0, 1)
  uint64_t below(uint64_t n);
  void shuffle(std::vector<int64_t> &v);
  // The generator's whole state, for checkpoints: restoring it continues the same sequence.
  std::string saveState() const;
  bool restoreState(const std::string &text);

private:
  uint64_t s_[4];
};

} // namespace soma::rt
