// IDX: big-endian header (magic 0x00000803 images / 0x00000801 labels, then the dimensions)
// followed by unsigned bytes. CSV: comma-separated numbers, one sample a line.
#include "soma/Data.h"

#include "soma/File.h"
#include "soma/Model.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>

namespace soma::rt {

namespace {

bool readFile(const std::string &path, std::string &data, std::string &error) {
  std::string why = readRegularFile(path, data);
  if (!why.empty())
    error = path + ": error: " + why;
  return why.empty();
}

// What every reader checks before a data set is used: samples, and values in each.
std::string checkShape(const std::string &path, const Dataset &d) {
  if (d.count == 0)
    return path + ": error: the file has no samples";
  if (d.sampleSize == 0)
    return path + ": error: its samples have no values (shape " + formatDims(d.sampleDims) + ")";
  return "";
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

static std::string readLabels(const std::string &path, std::vector<int64_t> &shape, std::vector<double> &values);
static std::string setLabels(const std::string &path, const std::string &samplesPath, const char *samples,
                             int64_t count, const std::vector<int64_t> &shape, const std::vector<double> &values,
                             Dataset &out);

std::string loadIdx(const std::string &images, const std::string &labels, Dataset &out) {
  std::string img, error;
  if (!readFile(images, img, error))
    return error;
  std::vector<int64_t> idims, ls;
  std::vector<double> lv;
  if (!idxHeader(images, img, 0x803, idims, error))
    return error;
  if (!labels.empty())
    if (std::string e = readLabels(labels, ls, lv); !e.empty())
      return e;
  out = Dataset{};
  if (std::string e = setLabels(labels, images, "images", idims[0], ls, lv, out); !e.empty())
    return e;
  out.count = idims[0];
  out.sampleDims.assign(idims.begin() + 1, idims.end());
  // With samples, the header's check bounds the product by the file's size; without, it can be
  // anything (2^32 cubed): saturate above the file's size, and checkShape says there are none.
  out.sampleSize = 1;
  int64_t cap = static_cast<int64_t>(img.size()) + 1;
  for (int64_t d : out.sampleDims)
    out.sampleSize = d != 0 && out.sampleSize > cap / d ? cap : out.sampleSize * d;
  if (std::string e = checkShape(images, out); !e.empty())
    return e;
  size_t n = static_cast<size_t>(out.count * out.sampleSize);
  out.features.resize(n);
  const unsigned char *p = reinterpret_cast<const unsigned char *>(img.data()) + 16;
  for (size_t i = 0; i < n; ++i)
    out.features[i] = static_cast<float>(p[i]) / 255.0f;
  return "";
}

namespace {

std::vector<std::string> splitFields(const std::string &line, std::vector<size_t> &starts) {
  std::vector<std::string> fields;
  starts.clear();
  size_t start = 0;
  for (;;) {
    size_t end = line.find(',', start);
    std::string field = line.substr(start, end == std::string::npos ? std::string::npos : end - start);
    size_t b = field.find_first_not_of(" \t"), e = field.find_last_not_of(" \t");
    field = b == std::string::npos ? "" : field.substr(b, e - b + 1);
    if (field.size() >= 2 && field.front() == '"' && field.back() == '"')
      field = field.substr(1, field.size() - 2);
    fields.push_back(field);
    starts.push_back(start + 1);
    if (end == std::string::npos)
      return fields;
    start = end + 1;
  }
}

// A decimal number as people write them: [+-]digits[.digits][e[+-]digits], within float's range.
// strtod alone would also take "0x10", "nan", "inf" and stop silently at a NUL byte.
// A field of a data file as a message shows it: control bytes (a NUL, say) as \xNN, between quotes.
std::string quoted(const std::string &field) {
  std::string out = "'";
  for (unsigned char c : field) {
    if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "'";
}

enum class Parsed { Number, NotANumber, OutOfRange };
Parsed parse(const std::string &field, double &v) {
  size_t i = 0, n = field.size();
  auto digits = [&] {
    size_t from = i;
    while (i < n && field[i] >= '0' && field[i] <= '9')
      ++i;
    return i - from;
  };
  if (i < n && (field[i] == '+' || field[i] == '-'))
    ++i;
  size_t whole = digits(), fraction = 0;
  if (i < n && field[i] == '.') {
    ++i;
    fraction = digits();
  }
  if (whole + fraction == 0)
    return Parsed::NotANumber;
  if (i < n && (field[i] == 'e' || field[i] == 'E')) {
    ++i;
    if (i < n && (field[i] == '+' || field[i] == '-'))
      ++i;
    if (digits() == 0)
      return Parsed::NotANumber;
  }
  if (i != n)
    return Parsed::NotANumber;
  v = std::strtod(field.c_str(), nullptr);
  return std::isfinite(v) && std::abs(v) <= std::numeric_limits<float>::max() ? Parsed::Number : Parsed::OutOfRange;
}
bool parseNumber(const std::string &field, double &v) { return parse(field, v) == Parsed::Number; }

std::string notANumber(const std::string &field, double &v) {
  return parse(field, v) == Parsed::OutOfRange ? " is beyond float's range (3.4e38): " + quoted(field)
                                               : " is not a number: " + quoted(field);
}

} // namespace

std::string loadCsv(const std::string &path, const CsvOptions &o, Dataset &out) {
  std::string text, error;
  if (!readFile(path, text, error))
    return error;
  std::istringstream in(text);
  std::string line;
  int64_t lineNo = 0, columns = -1;
  std::vector<int64_t> features, labels; // the columns of each
  std::vector<std::string> header, rawLabels;
  std::vector<int64_t> rawLabelLines;
  bool textLabels = false;
  out = Dataset{};
  auto at = [&](int64_t l) { return path + ":" + std::to_string(l); };
  while (std::getline(in, line)) {
    ++lineNo;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#')
      continue; // blank lines and comments
    std::vector<size_t> starts;
    std::vector<std::string> fields = splitFields(line, starts);
    if (o.header && header.empty()) {
      header = fields;
      continue;
    }
    if (columns < 0) { // the first data row fixes the layout
      columns = static_cast<int64_t>(fields.size());
      if (!header.empty() && header.size() != fields.size())
        return at(lineNo) + ": error: row has " + std::to_string(fields.size()) + " columns, the header " +
               std::to_string(header.size());
      auto byName = [&](const std::string &name, int64_t &index) -> std::string {
        if (header.empty())
          return path + ": error: column '" + name + "' is named, but the file has no header (add header: true)";
        auto it = std::find(header.begin(), header.end(), name);
        if (it == header.end()) {
          std::string names;
          for (const std::string &h : header)
            names += (names.empty() ? "" : ", ") + h;
          return path + ": error: no column named '" + name + "'; the header has " + names;
        }
        index = it - header.begin();
        return "";
      };
      if (!o.labelled) { // no labels; the label columns the header names are skipped
        for (const std::string &name : o.labelNames)
          if (auto it = std::find(header.begin(), header.end(), name); it != header.end())
            labels.push_back(it - header.begin());
      } else if (!o.labelNames.empty()) {
        for (const std::string &name : o.labelNames) {
          int64_t c;
          if (std::string e = byName(name, c); !e.empty())
            return e;
          labels.push_back(c);
        }
      } else {
        for (int64_t c : o.labelColumns.empty() ? std::vector<int64_t>{-1} : o.labelColumns) {
          if (c < -columns || c >= columns)
            return path + ": error: label column " + std::to_string(c) + " is outside the " + std::to_string(columns) +
                   " columns";
          labels.push_back(c < 0 ? columns + c : c);
        }
      }
      for (size_t i = 0; i < labels.size(); ++i)
        if (std::find(labels.begin(), labels.begin() + static_cast<std::ptrdiff_t>(i), labels[i]) !=
            labels.begin() + static_cast<std::ptrdiff_t>(i))
          return path + ": error: column " + std::to_string(labels[i]) + " is named twice as a label";
      for (const std::string &n : o.columnNames) {
        int64_t c;
        if (std::string e = byName(n, c); !e.empty())
          return e;
        features.push_back(c);
      }
      for (int64_t c : o.columns) {
        if (c < -columns || c >= columns)
          return path + ": error: column " + std::to_string(c) + " is outside the " + std::to_string(columns) +
                 " columns";
        features.push_back(c < 0 ? columns + c : c);
      }
      auto isLabel = [&](int64_t c) { return std::find(labels.begin(), labels.end(), c) != labels.end(); };
      if (o.columns.empty() && o.columnNames.empty())
        for (int64_t c = 0; c < columns; ++c)
          if (!isLabel(c))
            features.push_back(c);
      if (features.empty())
        return at(lineNo) + ": error: a row needs at least one feature" + (o.labelled ? " and a label" : "");
      for (int64_t c : features)
        if (isLabel(c))
          return path + ": error: column " + std::to_string(c) + " is both a label and a feature";
    } else if (static_cast<int64_t>(fields.size()) != columns) {
      return at(lineNo) + ": error: row has " + std::to_string(fields.size()) + " columns, expected " +
             std::to_string(columns);
    }
    for (int64_t c : features) {
      double v;
      if (!parseNumber(fields[static_cast<size_t>(c)], v))
        return at(lineNo) + ":" + std::to_string(starts[static_cast<size_t>(c)]) + ": error: field " +
               std::to_string(c + 1) + notANumber(fields[static_cast<size_t>(c)], v);
      out.features.push_back(static_cast<float>(v));
    }
    ++out.count;
    if (!o.labelled)
      continue;
    if (labels.size() > 1) { // several labels a sample: numbers
      for (int64_t c : labels) {
        double v;
        if (!parseNumber(fields[static_cast<size_t>(c)], v))
          return at(lineNo) + ":" + std::to_string(starts[static_cast<size_t>(c)]) + ": error: label (field " +
                 std::to_string(c + 1) + ")" + notANumber(fields[static_cast<size_t>(c)], v) +
                 "; a sample's several labels are numbers";
        out.labels.push_back(static_cast<float>(v));
      }
      continue;
    }
    int64_t label = labels[0];
    const std::string &l = fields[static_cast<size_t>(label)];
    double v;
    bool numeric = parseNumber(l, v);
    std::string where = at(lineNo) + ":" + std::to_string(starts[static_cast<size_t>(label)]);
    if (!numeric && (!o.classNames || l.empty()))
      return where + ": error: label (field " + std::to_string(label + 1) + ")" + notANumber(l, v) +
             (o.classNames ? "" : "; this model's loss takes numbers, not class names");
    // Labels are all numbers or all class names: one 'n/a' among numbers is a mistake in the
    // data, not a reason to read every number as a name.
    if (!rawLabels.empty() && numeric == textLabels)
      return where + ": error: label " + quoted(l) + " is " + (numeric ? "a number" : "not a number") + ", but line " +
             std::to_string(rawLabelLines.front()) + "'s label " + quoted(rawLabels.front()) + " is " +
             (numeric ? "a class name" : "a number") + "; labels are all numbers or all class names";
    textLabels |= !numeric;
    rawLabels.push_back(l);
    rawLabelLines.push_back(lineNo);
    out.labels.push_back(numeric ? static_cast<float>(v) : 0.0f);
  }
  if (out.count == 0)
    return path + ": error: no data rows";
  if (!textLabels && o.classNames && !o.classNames->empty())
    return path + ": error: the labels are numbers, but the training data's are class names (" + o.classNames->front() +
           ", ...)";
  if (textLabels) { // class names: numbered in sorted order, or by the training set's numbering
    std::vector<std::string> &names = *o.classNames;
    if (names.empty()) {
      names = rawLabels;
      std::sort(names.begin(), names.end());
      names.erase(std::unique(names.begin(), names.end()), names.end());
    }
    for (size_t i = 0; i < rawLabels.size(); ++i) {
      auto it = std::find(names.begin(), names.end(), rawLabels[i]);
      if (it == names.end())
        return at(rawLabelLines[i]) + ": error: class " + quoted(rawLabels[i]) + " is not one of the training data's";
      out.labels[i] = static_cast<float>(it - names.begin());
    }
  }
  out.sampleSize = static_cast<int64_t>(features.size());
  out.sampleDims = {out.sampleSize};
  out.labelSize = o.labelled ? static_cast<int64_t>(labels.size()) : 0;
  return "";
}

// .npy: magic "\x93NUMPY", version, header length, a Python dict literal, then the data.
static std::string readNpy(const std::string &path, std::vector<int64_t> &shape, std::vector<double> &values) {
  std::string d, error;
  if (!readFile(path, d, error))
    return error;
  auto fail = [&](const std::string &what) { return path + ": error: " + what; };
  if (d.size() < 10 || d.compare(0, 6, "\x93NUMPY") != 0)
    return fail("not a NumPy .npy file (no \\x93NUMPY magic)");
  unsigned major = static_cast<unsigned char>(d[6]);
  size_t lenBytes = major == 1 ? 2 : 4, headerAt = 8 + lenBytes;
  if (major < 1 || major > 3 || d.size() < headerAt)
    return fail("unsupported .npy version " + std::to_string(major));
  size_t len = 0;
  for (size_t i = 0; i < lenBytes; ++i)
    len |= static_cast<size_t>(static_cast<unsigned char>(d[8 + i])) << (8 * i);
  if (d.size() < headerAt + len)
    return fail("truncated .npy header");
  std::string h = d.substr(headerAt, len);
  auto field = [&](const std::string &key) -> std::string {
    size_t k = h.find("'" + key + "'");
    if (k == std::string::npos)
      return "";
    size_t colon = h.find(':', k);
    if (colon == std::string::npos)
      return "";
    size_t b = h.find_first_not_of(' ', colon + 1);
    if (b == std::string::npos)
      return "";
    size_t e = h[b] == '(' ? h.find(')', b) + 1 : h[b] == '\'' ? h.find('\'', b + 1) + 1 : h.find_first_of(",}", b);
    return e == std::string::npos || e <= b ? "" : h.substr(b, e - b);
  };
  std::string descr = field("descr"), order = field("fortran_order"), shapeText = field("shape");
  if (descr.empty() || shapeText.size() < 2 || order.empty())
    return fail("corrupted .npy header: " + h);
  if (order != "False")
    return fail("Fortran-ordered arrays are not supported; save with np.ascontiguousarray");
  static const std::vector<std::pair<std::string, int>> types = {
      {"'<f4'", 4}, {"'<f8'", 8}, {"'|u1'", 1}, {"'<i4'", -4}, {"'<i8'", -8}};
  int size = 0;
  for (const auto &[name, bytes] : types)
    if (descr == name)
      size = bytes;
  if (!size)
    return fail("element type " + descr + " is not supported (float32, float64, uint8, int32 or int64)");
  if (shapeText.front() != '(' || shapeText.back() != ')')
    return fail("corrupted .npy shape " + shapeText + " (not a tuple)");
  shape.clear();
  int64_t count = 1; // saturates at 2^40 elements, far more than any file holds
  for (size_t i = 1; i < shapeText.size() - 1;) {
    size_t e = shapeText.find_first_of(",)", i); // found: the text ends with ')'
    if (e == std::string::npos)
      return fail("corrupted .npy shape " + shapeText);
    std::string n = shapeText.substr(i, e - i);
    n.erase(0, n.find_first_not_of(' '));
    if (!n.empty()) {
      char *stop = nullptr;
      long long v = std::strtoll(n.c_str(), &stop, 10);
      if (*stop != '\0' || v < 0 || v > (int64_t{1} << 31))
        return fail("corrupted .npy shape " + shapeText);
      shape.push_back(v);
      count = v != 0 && count > (int64_t{1} << 40) / v ? int64_t{1} << 40 : count * v;
    }
    i = e + 1;
  }
  size_t bytes = static_cast<size_t>(std::abs(size)), at = headerAt + len;
  if (d.size() - at < static_cast<size_t>(count) * bytes)
    return fail("truncated: the header promises " + std::to_string(count) + " elements");
  if (d.size() - at > static_cast<size_t>(count) * bytes)
    return fail(std::to_string(d.size() - at - static_cast<size_t>(count) * bytes) + " unexpected bytes after the " +
                std::to_string(count) + " elements of shape " + shapeText);
  values.resize(static_cast<size_t>(count));
  const char *p = d.data() + at;
  for (size_t i = 0; i < values.size(); ++i, p += bytes) {
    switch (size) {
    case 4: {
      float f;
      std::memcpy(&f, p, 4);
      values[i] = f;
      break;
    }
    case 8: {
      double f;
      std::memcpy(&f, p, 8);
      values[i] = f;
      break;
    }
    case 1:
      values[i] = static_cast<unsigned char>(*p);
      break;
    case -4: {
      int32_t v;
      std::memcpy(&v, p, 4);
      values[i] = v;
      break;
    }
    default: {
      int64_t v;
      std::memcpy(&v, p, 8);
      values[i] = static_cast<double>(v);
      break;
    }
    }
    if (!std::isfinite(values[i]) || std::abs(values[i]) > std::numeric_limits<float>::max()) {
      std::string index; // the element's position, as NumPy prints it
      for (size_t a = shape.size(), rest = i; a-- > 0;) {
        index = std::to_string(rest % static_cast<size_t>(shape[a])) + (index.empty() ? "" : ", ") + index;
        rest /= static_cast<size_t>(shape[a]);
      }
      char text[32];
      std::snprintf(text, sizeof text, "%g", values[i]);
      return fail("element [" + index + "] is " + text + (std::isfinite(values[i]) ? ", beyond float's range" : "") +
                  "; data must be finite numbers");
    }
  }
  return "";
}

// An IDX label file (0x801: one unsigned byte a sample) or a .npy array, by its first bytes.
static std::string readLabels(const std::string &path, std::vector<int64_t> &shape, std::vector<double> &values) {
  std::string d, error;
  if (!readFile(path, d, error))
    return error;
  if (d.compare(0, 6, "\x93NUMPY") == 0)
    return readNpy(path, shape, values);
  if (d.size() < 4 || (be32(d, 0) & 0xffffff00) != 0x800)
    return path + ": error: not a NumPy .npy file (no \\x93NUMPY magic) nor an IDX label file (magic 0x00000801)";
  if (!idxHeader(path, d, 0x801, shape, error))
    return error;
  values.resize(d.size() - 8); // the header's check: exactly shape[0] bytes follow
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = static_cast<unsigned char>(d[8 + i]);
  return "";
}

// Labels of shape (n,) or (n, 1): one a sample; (n, k, ...): k... a sample; none without a file.
static std::string setLabels(const std::string &path, const std::string &samplesPath, const char *samples,
                             int64_t count, const std::vector<int64_t> &shape, const std::vector<double> &values,
                             Dataset &out) {
  out.labelSize = path.empty() ? 0 : 1;
  if (path.empty())
    return "";
  if (shape.empty())
    return path + ": error: labels need a first axis of samples, shape (n,) or (n, k)";
  for (size_t a = 1; a < shape.size(); ++a)
    out.labelSize *= shape[a];
  if (out.labelSize == 0)
    return path + ": error: the labels have no values (shape " + formatDims(shape) + ")";
  if (shape[0] != count)
    return path + ": error: " + std::to_string(shape[0]) + " labels for " + std::to_string(count) + " " + samples +
           " in " + samplesPath;
  out.labels.assign(values.begin(), values.end());
  return "";
}

std::string loadNpy(const std::string &features, const std::string &labels, Dataset &out) {
  std::vector<int64_t> fs, ls;
  std::vector<double> fv, lv;
  if (std::string e = readNpy(features, fs, fv); !e.empty())
    return e;
  if (!labels.empty())
    if (std::string e = readLabels(labels, ls, lv); !e.empty())
      return e;
  if (fs.empty() || fs[0] == 0)
    return features + ": error: the array needs a first axis of samples";
  out = Dataset{};
  if (std::string e = setLabels(labels, features, "samples", fs[0], ls, lv, out); !e.empty())
    return e;
  out.count = fs[0];
  out.sampleDims.assign(fs.begin() + 1, fs.end());
  out.sampleSize = 1;
  for (int64_t d : out.sampleDims)
    out.sampleSize *= d;
  if (std::string e = checkShape(features, out); !e.empty())
    return e;
  out.features.assign(fv.begin(), fv.end());
  return "";
}

void Standardizer::fit(const Dataset &d) {
  size_t n = static_cast<size_t>(d.sampleSize);
  std::vector<double> sum(n, 0), sq(n, 0);
  for (int64_t i = 0; i < d.count; ++i)
    for (size_t j = 0; j < n; ++j) {
      double v = d.features[static_cast<size_t>(i) * n + j];
      sum[j] += v;
      sq[j] += v * v;
    }
  mean.assign(n, 0);
  inverseStd.assign(n, 1);
  double count = static_cast<double>(std::max<int64_t>(d.count, 1));
  for (size_t j = 0; j < n; ++j) {
    double m = sum[j] / count, var = std::max(0.0, sq[j] / count - m * m);
    mean[j] = static_cast<float>(m);
    inverseStd[j] = var > 1e-12 ? static_cast<float>(1 / std::sqrt(var)) : 1.0f; // a constant feature stays 0
  }
}

void Standardizer::apply(Dataset &d) const {
  size_t n = mean.size();
  for (size_t i = 0; i < d.features.size(); ++i)
    d.features[i] = (d.features[i] - mean[i % n]) * inverseStd[i % n];
}

void splitOff(Dataset &from, double fraction, uint64_t seed, Dataset &held) {
  int64_t take = static_cast<int64_t>(std::floor(static_cast<double>(from.count) * fraction));
  std::vector<int64_t> order(static_cast<size_t>(from.count));
  for (int64_t i = 0; i < from.count; ++i)
    order[static_cast<size_t>(i)] = i;
  Rng rng(seed);
  rng.shuffle(order);
  std::vector<bool> isHeld(static_cast<size_t>(from.count), false);
  for (int64_t i = 0; i < take; ++i)
    isHeld[static_cast<size_t>(order[static_cast<size_t>(i)])] = true;
  Dataset kept;
  held = Dataset{};
  for (Dataset *d : {&kept, &held}) {
    d->sampleDims = from.sampleDims;
    d->sampleSize = from.sampleSize;
    d->labelSize = from.labelSize;
  }
  size_t n = static_cast<size_t>(from.sampleSize);
  for (int64_t i = 0; i < from.count; ++i) { // in the original order
    Dataset &to = isHeld[static_cast<size_t>(i)] ? held : kept;
    to.features.insert(to.features.end(), from.features.begin() + static_cast<std::ptrdiff_t>(i * n),
                       from.features.begin() + static_cast<std::ptrdiff_t>((i + 1) * n));
    to.labels.insert(to.labels.end(), from.labels.begin() + static_cast<std::ptrdiff_t>(i * from.labelSize),
                     from.labels.begin() + static_cast<std::ptrdiff_t>((i + 1) * from.labelSize));
    ++to.count;
  }
  from = std::move(kept);
}

std::string checkClassLabels(const Dataset &d, int64_t classes, const std::string &source) {
  for (size_t i = 0; i < d.labels.size(); ++i) {
    float l = d.labels[i];
    if (!(l >= 0) || l >= static_cast<float>(classes) || l != std::floor(l)) {
      char text[32];
      std::snprintf(text, sizeof text, "%g", static_cast<double>(l));
      size_t k = static_cast<size_t>(std::max<int64_t>(d.labelSize, 1));
      std::string which = k > 1 ? " (value " + std::to_string(i % k) + ")" : "";
      return source + ": error: label " + text + " of sample " + std::to_string(i / k) + which +
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
