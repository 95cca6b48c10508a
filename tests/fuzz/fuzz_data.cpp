// The data readers on any bytes: IDX images and labels, CSV (with each option the first byte
// picks), NumPy .npy. Each either loads a data set it can vouch for (samples, values in each,
// finite numbers) or says why not.
#include "MemFile.h"
#include "soma/Data.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace soma::rt;

static void vouch(const std::string &error, const Dataset &d) {
  if (!error.empty())
    return;
  bool ok = d.count > 0 && d.sampleSize > 0 && d.labelSize >= 0 &&
            static_cast<int64_t>(d.labels.size()) == d.count * d.labelSize &&
            static_cast<int64_t>(d.features.size()) == d.count * d.sampleSize;
  for (float v : d.features)
    ok = ok && std::isfinite(v);
  if (!ok) {
    std::fprintf(stderr, "a data set was accepted that is empty, ragged or not finite\n");
    std::abort();
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  unsigned mode = data[0];
  soma::fuzz::MemFile file(data + 1, size - 1);
  Dataset d;
  std::string error;
  switch (mode % 4) {
  case 0: { // images and labels from the same bytes: the header decides what is read
    error = loadIdx(file.path(), mode & 4 ? file.path() : "", d);
    break;
  }
  case 1:
  case 2: {
    CsvOptions o;
    o.header = mode & 4;
    o.labelled = !(mode & 8);
    o.labelColumns = {mode & 16 ? 0 : -1};
    if (mode & 64) // two label columns a row
      o.labelColumns.push_back(1);
    if (mode & 32)
      o.labelNames = {"label"};
    std::vector<std::string> names;
    if (mode % 4 == 2)
      o.classNames = &names;
    error = loadCsv(file.path(), o, d);
    break;
  }
  default:
    error = loadNpy(file.path(), mode & 4 ? file.path() : "", d);
    break;
  }
  vouch(error, d);
  return 0;
}
