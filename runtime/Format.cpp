#include "soma/Format.h"

#include <cassert>
#include <charconv>
#include <cstdio>

namespace soma::rt {

namespace {

std::string formatOne(std::string_view spec, const FormatArg &a) {
  switch (a.kind) {
  case FormatArg::Kind::Text:
    return std::string(a.text);
  case FormatArg::Kind::Signed:
    return std::to_string(a.i);
  case FormatArg::Kind::Unsigned:
    return std::to_string(a.u);
  case FormatArg::Kind::Real:
    break;
  }
  char buf[64];
  if (spec.empty()) {
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, a.real);
    return ec == std::errc() ? std::string(buf, end) : std::string("?");
  }
  // ".Nf" or ".Ng"
  assert(spec.size() >= 3 && spec[0] == '.' && (spec.back() == 'f' || spec.back() == 'g'));
  std::string c = "%" + std::string(spec);
  std::snprintf(buf, sizeof buf, c.c_str(), a.real);
  return buf;
}

} // namespace

std::string formatArgs(std::string_view f, const FormatArg *args, size_t count) {
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if ((c == '{' || c == '}') && i + 1 < f.size() && f[i + 1] == c) {
      out += c;
      ++i;
    } else if (c == '{') {
      size_t close = f.find('}', i);
      assert(close != std::string_view::npos && next < count);
      std::string_view spec = f.substr(i + 1, close - i - 1);
      if (!spec.empty() && spec[0] == ':')
        spec.remove_prefix(1);
      out += next < count ? formatOne(spec, args[next++]) : std::string();
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

} // namespace soma::rt
