// safetensors reading and writing. The header is parsed by a small JSON reader that accepts the
// whole JSON grammar but keeps only what safetensors uses; it bounds nesting and sizes, so a
// corrupted file gives an error, never a crash.
#include "soma/Safetensors.h"

#include "soma/File.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <memory>
#include <sstream>
#include <unistd.h>

namespace soma::rt {

int64_t NamedTensor::elements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

const NamedTensor *TensorFile::find(const std::string &name) const {
  for (const NamedTensor &t : tensors)
    if (t.name == name)
      return &t;
  return nullptr;
}

namespace {

constexpr uint64_t kMaxHeader = 100u << 20; // as the reference implementation: 100 MB

// --- A bounded JSON reader ----------------------------------------------------------------

struct JsonMember;
struct Json {
  enum class Kind { Null, Bool, Number, String, Array, Object } kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  bool isInteger = false;
  int64_t integer = 0;
  std::string text;
  std::vector<Json> items;         // Array
  std::vector<JsonMember> members; // Object, in order
};
struct JsonMember { // not std::pair: a pair of the incomplete Json is not allowed
  std::string first;
  Json second;
};

class JsonReader {
public:
  explicit JsonReader(const std::string &s) : s_(s) {}

  bool parse(Json &out, std::string &error) {
    if (!value(out, 0) || (skip(), pos_ != s_.size())) {
      error = error_.empty() ? "unexpected text after the header's JSON" : error_;
      if (error_.empty() && pos_ < s_.size())
        error += " at byte " + std::to_string(pos_);
      return false;
    }
    return true;
  }

private:
  bool fail(const std::string &what) {
    if (error_.empty())
      error_ = what + " at byte " + std::to_string(pos_) + " of the header";
    return false;
  }
  void skip() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool literal(const char *word) {
    size_t n = std::strlen(word);
    if (s_.compare(pos_, n, word) != 0)
      return fail("invalid JSON");
    pos_ += n;
    return true;
  }

  bool value(Json &out, int depth) {
    if (depth > 32)
      return fail("JSON nested too deeply");
    skip();
    if (pos_ >= s_.size())
      return fail("JSON ends early");
    char c = s_[pos_];
    if (c == '{')
      return object(out, depth);
    if (c == '[')
      return array(out, depth);
    if (c == '"') {
      out.kind = Json::Kind::String;
      return string(out.text);
    }
    if (c == 't' || c == 'f') {
      out.kind = Json::Kind::Bool;
      out.boolean = c == 't';
      return literal(c == 't' ? "true" : "false");
    }
    if (c == 'n') {
      out.kind = Json::Kind::Null;
      return literal("null");
    }
    return number(out);
  }

  bool object(Json &out, int depth) {
    out.kind = Json::Kind::Object;
    ++pos_;
    skip();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    while (true) {
      skip();
      std::string key;
      if (pos_ >= s_.size() || s_[pos_] != '"' || !string(key))
        return fail("expected a quoted key");
      skip();
      if (pos_ >= s_.size() || s_[pos_] != ':')
        return fail("expected ':'");
      ++pos_;
      Json v;
      if (!value(v, depth + 1))
        return false;
      out.members.push_back({std::move(key), std::move(v)});
      skip();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }

  bool array(Json &out, int depth) {
    out.kind = Json::Kind::Array;
    ++pos_;
    skip();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      Json v;
      if (!value(v, depth + 1))
        return false;
      out.items.push_back(std::move(v));
      skip();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  bool string(std::string &out) {
    ++pos_; // the opening quote
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"')
        return true;
      if (static_cast<unsigned char>(c) < 0x20)
        return fail("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size())
        break;
      char e = s_[pos_++];
      switch (e) {
      case '"':
      case '\\':
      case '/':
        out += e;
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': { // kept as UTF-8; surrogate pairs are not needed for tensor names
        if (pos_ + 4 > s_.size())
          return fail("bad \\u escape");
        unsigned cp = 0;
        for (int i = 0; i < 4; ++i) {
          char h = s_[pos_++];
          int d = h >= '0' && h <= '9'   ? h - '0'
                  : h >= 'a' && h <= 'f' ? h - 'a' + 10
                  : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                         : -1;
          if (d < 0)
            return fail("bad \\u escape");
          cp = cp << 4 | static_cast<unsigned>(d);
        }
        if (cp < 0x80) {
          out += static_cast<char>(cp);
        } else if (cp < 0x800) {
          out += static_cast<char>(0xc0 | cp >> 6);
          out += static_cast<char>(0x80 | (cp & 0x3f));
        } else {
          out += static_cast<char>(0xe0 | cp >> 12);
          out += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
          out += static_cast<char>(0x80 | (cp & 0x3f));
        }
        break;
      }
      default:
        return fail("bad escape in a string");
      }
    }
    return fail("unterminated string");
  }

  bool number(Json &out) {
    size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-')
      ++pos_;
    bool digits = false, integer = true;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c >= '0' && c <= '9')
        digits = true;
      else if (c == '.' || c == 'e' || c == 'E' ||
               ((c == '+' || c == '-') && pos_ > start && (s_[pos_ - 1] == 'e' || s_[pos_ - 1] == 'E')))
        integer = false;
      else
        break;
      ++pos_;
    }
    if (!digits)
      return fail("invalid JSON value");
    std::string text = s_.substr(start, pos_ - start);
    out.kind = Json::Kind::Number;
    char *end = nullptr;
    out.number = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size())
      return fail("invalid number");
    if (integer && text.size() <= 18) { // exact, and far from overflowing int64
      out.isInteger = true;
      out.integer = std::strtoll(text.c_str(), nullptr, 10);
    }
    return true;
  }

  const std::string &s_;
  size_t pos_ = 0;
  std::string error_;
};

std::string quote(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

const char *dtypeName(NamedTensor::DType d) { return d == NamedTensor::DType::F32 ? "F32" : "I64"; }
size_t dtypeSize(NamedTensor::DType d) { return d == NamedTensor::DType::F32 ? 4 : 8; }

// Little-endian bytes: this runtime targets x86-64 (little-endian), so the in-memory order is
// the file's; a big-endian host would need a byte swap here.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

const Json *member(const Json &o, const std::string &key) {
  for (const auto &[k, v] : o.members)
    if (k == key)
      return &v;
  return nullptr;
}

} // namespace

std::string writeSafetensors(const std::string &path, const TensorFile &file) {
  std::string header = "{";
  bool first = true;
  auto sep = [&] {
    if (!first)
      header += ",";
    first = false;
  };
  if (!file.metadata.empty()) {
    sep();
    header += "\"__metadata__\":{";
    bool firstMeta = true;
    for (const auto &[k, v] : file.metadata) {
      header += (firstMeta ? "" : ",") + quote(k) + ":" + quote(v);
      firstMeta = false;
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (const NamedTensor &t : file.tensors) {
    uint64_t bytes = static_cast<uint64_t>(t.elements()) * dtypeSize(t.dtype);
    sep();
    header += quote(t.name) + ":{\"dtype\":\"" + dtypeName(t.dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i)
      header += (i ? "," : "") + std::to_string(t.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  header += "}";
  while ((8 + header.size()) % 8) // the data starts 8-byte aligned, as the reference writer does
    header += ' ';

  uint64_t n = header.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i)
    len[i] = static_cast<unsigned char>(n >> (8 * i));
  std::vector<FilePart> parts = {{len, 8}, {header.data(), header.size()}};
  for (const NamedTensor &t : file.tensors)
    parts.push_back(t.dtype == NamedTensor::DType::F32 ? FilePart{t.f32.data(), t.f32.size() * 4}
                                                       : FilePart{t.i64.data(), t.i64.size() * 8});
  return writeFileAtomically(path, parts);
}

std::string writeFileAtomically(const std::string &path, const std::vector<FilePart> &parts,
                                const std::string &tmpName) {
  // A temporary file beside the target, flushed to disk, then renamed over it.
  // The rename replaces whatever is at `path`: only a regular file may be (never a device, a
  // directory or a symbolic link), and the temporary file is never opened through a link.
  std::string tmp = tmpName.empty() ? path + ".tmp" : tmpName;
  if (std::string why = replaceableFile(path); !why.empty())
    return path + ": error: " + why;
  if (std::string why = replaceableFile(tmp); !why.empty())
    return tmp + ": error: " + why;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0)
    return path + ": error: cannot write: " + std::strerror(errno);
  auto writeAll = [&](const void *data, size_t n) {
    const char *p = static_cast<const char *>(data);
    while (n > 0) {
      ssize_t w = ::write(fd, p, n);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  };
  bool ok = true;
  for (const FilePart &part : parts)
    ok = ok && writeAll(part.data, part.size);
  int savedErrno = errno;
  ok = ok && ::fsync(fd) == 0;
  if (!ok)
    savedErrno = errno;
  ok = ::close(fd) == 0 && ok;
  if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    savedErrno = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return path + ": error: cannot write: " + std::strerror(savedErrno ? savedErrno : EIO);
  }
  return "";
}

std::string readSafetensors(const std::string &path, TensorFile &out) {
  auto error = [&](const std::string &what) { return path + ": error: " + what; };
  std::string data;
  if (std::string why = readRegularFile(path, data); !why.empty())
    return error(why);
  if (data.size() < 8)
    return error("not a safetensors file: " + std::to_string(data.size()) +
                 " bytes, shorter than its 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = n << 8 | static_cast<unsigned char>(data[static_cast<size_t>(i)]);
  if (n > kMaxHeader)
    return error("not a safetensors file: header length " + std::to_string(n) + " is implausible");
  if (n > data.size() - 8)
    return error("truncated: the header needs " + std::to_string(n) + " bytes, the file has " +
                 std::to_string(data.size() - 8) + " after the length");
  std::string header = data.substr(8, n);
  Json root;
  std::string jsonError;
  if (!JsonReader(header).parse(root, jsonError))
    return error("corrupted header: " + jsonError);
  if (root.kind != Json::Kind::Object)
    return error("corrupted header: not a JSON object");
  uint64_t dataSize = data.size() - 8 - n;
  const char *base = data.data() + 8 + n;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  out = TensorFile{};
  for (const auto &[name, v] : root.members) {
    if (name == "__metadata__") {
      if (v.kind != Json::Kind::Object)
        return error("corrupted header: __metadata__ is not an object");
      for (const auto &[k, mv] : v.members) {
        if (mv.kind != Json::Kind::String)
          return error("corrupted header: metadata '" + k + "' is not a string");
        out.metadata[k] = mv.text;
      }
      continue;
    }
    auto bad = [&](const std::string &what) { return error("corrupted header: tensor '" + name + "' " + what); };
    if (v.kind != Json::Kind::Object)
      return bad("is not an object");
    const Json *dtype = member(v, "dtype"), *shape = member(v, "shape"), *offsets = member(v, "data_offsets");
    if (!dtype || !shape || !offsets)
      return bad("needs dtype, shape and data_offsets");
    NamedTensor t;
    t.name = name;
    if (dtype->kind == Json::Kind::String && dtype->text == "F32")
      t.dtype = NamedTensor::DType::F32;
    else if (dtype->kind == Json::Kind::String && dtype->text == "I64")
      t.dtype = NamedTensor::DType::I64;
    else
      return bad("has dtype " + (dtype->kind == Json::Kind::String ? dtype->text : std::string("?")) +
                 "; Soma reads F32 and I64");
    if (shape->kind != Json::Kind::Array || shape->items.size() > 8)
      return bad("has an invalid shape");
    // The element count saturates above the file's size in bytes: no tensor of the file can have
    // more elements than that, and the byte count below cannot overflow.
    uint64_t elements = 1;
    bool zero = false;
    for (const Json &d : shape->items) {
      if (d.kind != Json::Kind::Number || !d.isInteger || d.integer < 0 || d.integer > (int64_t{1} << 40))
        return bad("has an invalid shape");
      t.shape.push_back(d.integer);
      uint64_t x = static_cast<uint64_t>(d.integer);
      zero |= x == 0;
      elements = x != 0 && elements > (dataSize + 1) / x ? dataSize + 1 : elements * x;
    }
    if (zero)
      elements = 0;
    if (elements > dataSize)
      return bad("has a shape of more elements than the file has bytes");
    if (offsets->kind != Json::Kind::Array || offsets->items.size() != 2)
      return bad("has invalid data_offsets");
    const Json &b = offsets->items[0], &e = offsets->items[1];
    if (b.kind != Json::Kind::Number || e.kind != Json::Kind::Number || !b.isInteger || !e.isInteger || b.integer < 0 ||
        e.integer < b.integer)
      return bad("has invalid data_offsets");
    uint64_t begin = static_cast<uint64_t>(b.integer), end = static_cast<uint64_t>(e.integer);
    if (end > dataSize)
      return error("truncated: tensor '" + name + "' needs bytes up to " + std::to_string(end) + ", the data has " +
                   std::to_string(dataSize));
    if (end - begin != elements * dtypeSize(t.dtype))
      return bad("has " + std::to_string(end - begin) + " bytes for " + std::to_string(elements) + " elements");
    if (t.dtype == NamedTensor::DType::F32)
      t.f32.resize(elements);
    else
      t.i64.resize(elements);
    if (end > begin) // an empty tensor's vector may have no storage at all
      std::memcpy(t.dtype == NamedTensor::DType::F32 ? static_cast<void *>(t.f32.data()) : t.i64.data(), base + begin,
                  end - begin);
    if (out.find(name))
      return bad("appears twice");
    ranges.push_back({begin, end});
    out.tensors.push_back(std::move(t));
  }
  // The tensors tile the data exactly: no overlap, no gap, nothing after.
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  for (auto [b, e] : ranges) {
    if (b != at)
      return error("corrupted: tensor data overlaps or leaves a gap at byte " + std::to_string(std::min(b, at)));
    at = e;
  }
  if (at != dataSize)
    return error("corrupted: " + std::to_string(dataSize - at) + " bytes after the last tensor");
  return "";
}

} // namespace soma::rt
