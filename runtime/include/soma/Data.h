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
  std::vector<float> features; // count * sampleSize, row-major
  std::vector<float> labels;   // count * labelSize, row-major
  int64_t labelSize = 1;       // label values per sample: 1 (a class, a number), k (several), 0 (none)
};

// Images (unsigned bytes, scaled to [0, 1]) and labels (unsigned bytes). Returns "" or an
// error. Without a labels file there are none (labelSize 0); the same holds for loadNpy.
std::string loadIdx(const std::string &images, const std::string &labels, Dataset &out);
struct CsvOptions {
  bool header = false; // the first row names the columns
  // false: no labels (samples to predict, an autoencoder's data); the columns labelNames names,
  // where the header has them, are skipped
  bool labelled = true;
  std::vector<int64_t> labelColumns;    // negative counts from the end; the last column when empty
  std::vector<std::string> labelNames;  // or the label columns by their header names
  std::vector<int64_t> columns;         // the feature columns (all but the label when empty)
  std::vector<std::string> columnNames; // or by their header names
  // Labels that are not numbers are class names, numbered in sorted order. Empty on input: made
  // from this file (a training set); otherwise the names to use (a test set).
  std::vector<std::string> *classNames = nullptr;
};
// One sample a row, comma-separated; several label columns give labelSize values a sample, all
// numbers. Returns "" or an error naming the file, line and column.
std::string loadCsv(const std::string &path, const CsvOptions &options, Dataset &out);

// NumPy .npy files: features (any shape, the first axis the samples; float32, float64, uint8,
// int32 or int64, C order) and labels ((n,) or (n, 1): one per sample; (n, k, ...): several).
// Returns "" or an error.
std::string loadNpy(const std::string &features, const std::string &labels, Dataset &out);

// Per-feature standardization, (x - mean) / std, with statistics of `from` applied to `to`.
struct Standardizer {
  std::vector<float> mean, inverseStd;
  void fit(const Dataset &from);
  void apply(Dataset &to) const;
};

// Moves a seeded random `fraction` of `from`'s samples into `held` (a validation set).
void splitOff(Dataset &from, double fraction, uint64_t seed, Dataset &held);

// Checks every label value is an integer in [0, classes). Returns "" or an error naming `source`.
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
