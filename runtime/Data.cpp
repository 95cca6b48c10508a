// IDX: big-endian header (magic 0x00000803 images / 0x00000801 labels, then the dimensions)
// followed by unsigned bytes. CSV: comma-separated numbers, one sample a line.
#include "soma/Data.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace soma::rt {

namespace {

bool readFile(const std::string &path, std::string &data, std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": error: cannot open file: " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  data = ss.str();
  return true;
}

uint32_t be32(const std::string &d, size_t at) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(d[at + i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

// Parses the IDX header; returns the dimensions or sets error.
bool idxHeader(const std::string &path, const std::string &d, uint32_t magic, std::vector<int64_t> &dims,
               std::string &error) {
  if (d.size() < 4 || be32(d, 0) != magic) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "not an IDX %s file: magic number is 0x%08x, expected 0x%08x",
                  magic == 0x803 ? "image" : "label", d.size() < 4 ? 0u : be32(d, 0), magic);
    error = path + ": error: " + buf;
    return false;
  }
  size_t rank = magic & 0xff;
  if (d.size() < 4 + 4 * rank) {
    error = path + ": error: truncated IDX header";
    return false;
  }
  int64_t total = 1; // capped at the file size, so a corrupt header cannot overflow it
  for (size_t i = 0; i < rank; ++i) {
    dims.push_back(be32(d, 4 + 4 * i));
    total = std::min<int64_t>(total * dims.back(), static_cast<int64_t>(d.size()) + 1);
  }
  size_t expected = 4 + 4 * rank + static_cast<size_t>(total);
  if (d.size() < expected) {
    std::string promised;
    for (int64_t x : dims)
      promised += (promised.empty() ? "" : "x") + std::to_string(x);
    error = path + ": error: truncated: header promises " + promised + " bytes of data, file has " +
            std::to_string(d.size() - 4 - 4 * rank);
    return false;
  }
  if (d.size() > expected) {
    error = path + ": error: " + std::to_string(d.size() - expected) + " unexpected bytes after the data";
    return false;
  }
  return true;
}

} // namespace

std::string loadIdx(const std::string &images, const std::string &labels, Dataset &out) {
  std::string img, lab, error;
  if (!readFile(images, img, error) || !readFile(labels, lab, error))
    return error;
  std::vector<int64_t> idims, ldims;
  if (!idxHeader(images, img, 0x803, idims, error) || !idxHeader(labels, lab, 0x801, ldims, error))
    return error;
  if (idims[0] != ldims[0])
    return labels + ": error: " + std::to_string(ldims[0]) + " labels for " + std::to_string(idims[0]) +
           " images in " + images;
  out.count = idims[0];
  out.sampleDims.assign(idims.begin() + 1, idims.end());
  out.sampleSize = 1;
  for (int64_t d : out.sampleDims)
    out.sampleSize *= d;
  size_t n = static_cast<size_t>(out.count * out.sampleSize);
  out.features.resize(n);
  const unsigned char *p = reinterpret_cast<const unsigned char *>(img.data()) + 16;
  for (size_t i = 0; i < n; ++i)
    out.features[i] = static_cast<float>(p[i]) / 255.0f;
  out.labels.resize(out.count);
  const unsigned char *q = reinterpret_cast<const unsigned char *>(lab.data()) + 8;
  for (int64_t i = 0; i < out.count; ++i)
    out.labels[i] = q[i];
  return "";
}

std::string loadCsv(const std::string &path, int64_t labelColumn, bool header, Dataset &out) {
  std::string text, error;
  if (!readFile(path, text, error))
    return error;
  std::istringstream in(text);
  std::string line;
  int64_t lineNo = 0, columns = -1;
  out = Dataset{};
  while (std::getline(in, line)) {
    ++lineNo;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#')
      continue; // blank lines and comments
    if (header && columns < 0 && lineNo == 1)
      continue;
    std::vector<float> row;
    size_t start = 0;
    for (;;) {
      size_t end = line.find(',', start);
      std::string field = line.substr(start, end == std::string::npos ? std::string::npos : end - start);
      size_t b = field.find_first_not_of(" \t"), e = field.find_last_not_of(" \t");
      field = b == std::string::npos ? "" : field.substr(b, e - b + 1);
      char *stop = nullptr;
      errno = 0;
      double v = std::strtod(field.c_str(), &stop);
      if (field.empty() || *stop != '\0' || errno == ERANGE || !std::isfinite(v))
        return path + ":" + std::to_string(lineNo) + ":" + std::to_string(start + 1) + ": error: field " +
               std::to_string(row.size() + 1) + " is not a number: '" + field + "'";
      row.push_back(static_cast<float>(v));
      if (end == std::string::npos)
        break;
      start = end + 1;
    }
    if (columns < 0) {
      columns = static_cast<int64_t>(row.size());
      if (columns < 2)
        return path + ":" + std::to_string(lineNo) + ": error: a row needs at least one feature and a label";
      if (labelColumn < -columns || labelColumn >= columns)
        return path + ": error: label column " + std::to_string(labelColumn) + " is outside the " +
               std::to_string(columns) + " columns";
    } else if (static_cast<int64_t>(row.size()) != columns) {
      return path + ":" + std::to_string(lineNo) + ": error: row has " + std::to_string(row.size()) +
             " columns, expected " + std::to_string(columns);
    }
    int64_t lc = labelColumn < 0 ? columns + labelColumn : labelColumn;
    for (int64_t c = 0; c < columns; ++c)
      if (c == lc)
        out.labels.push_back(row[c]);
      else
        out.features.push_back(row[c]);
    ++out.count;
  }
  if (out.count == 0)
    return path + ": error: no data rows";
  out.sampleSize = columns - 1;
  out.sampleDims = {out.sampleSize};
  return "";
}

std::string checkClassLabels(const Dataset &d, int64_t classes, const std::string &source) {
  for (int64_t i = 0; i < d.count; ++i) {
    float l = d.labels[i];
    if (!(l >= 0) || l >= static_cast<float>(classes) || l != std::floor(l)) {
      char text[32];
      std::snprintf(text, sizeof text, "%g", static_cast<double>(l));
      return source + ": error: label " + text + " of sample " + std::to_string(i) +
             " is not a class in [0, " + std::to_string(classes) + ")";
    }
  }
  return "";
}

static uint64_t splitmix(uint64_t &x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

Rng::Rng(uint64_t seed) {
  for (uint64_t &s : s_)
    s = splitmix(seed);
}

uint64_t Rng::next() {
  auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  uint64_t result = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

std::string Rng::saveState() const {
  char buf[4 * 17 + 1];
  std::snprintf(buf, sizeof buf, "%016llx:%016llx:%016llx:%016llx", (unsigned long long)s_[0],
                (unsigned long long)s_[1], (unsigned long long)s_[2], (unsigned long long)s_[3]);
  return buf;
}

bool Rng::restoreState(const std::string &text) { // four 16-digit hex words joined by ':'
  if (text.size() != 4 * 17 - 1)
    return false;
  uint64_t s[4];
  for (size_t i = 0; i < 4; ++i) {
    if (i < 3 && text[i * 17 + 16] != ':')
      return false;
    s[i] = 0;
    for (size_t k = 0; k < 16; ++k) {
      char c = text[i * 17 + k];
      int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (digit < 0)
        return false;
      s[i] = s[i] << 4 | static_cast<uint64_t>(digit);
    }
  }
  if ((s[0] | s[1] | s[2] | s[3]) == 0) // xoshiro's state is never all zero
    return false;
  std::copy(s, s + 4, s_);
  return true;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

uint64_t Rng::below(uint64_t n) { return n ? next() % n : 0; }

void Rng::shuffle(std::vector<int64_t> &v) {
  for (size_t i = v.size(); i > 1; --i)
    std::swap(v[i - 1], v[below(i)]);
}

} // namespace soma::rt
