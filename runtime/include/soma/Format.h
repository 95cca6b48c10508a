// format("{}: error: {} has shape {}", path, name, dims): the subset of {fmt}'s syntax the
// runtime's messages use ({}, {:.Nf}, {:.Ng}, {{, }}), so that a built program links no
// formatting library. A double with no precision prints as the shortest text that reads back
// as the same number.
#pragma once
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace soma::rt {

struct FormatArg {
  enum class Kind { Text, Real, Signed, Unsigned } kind;
  std::string_view text;
  double real = 0;
  int64_t i = 0;
  uint64_t u = 0;
  FormatArg(std::string_view s) : kind(Kind::Text), text(s) {}
  FormatArg(const std::string &s) : kind(Kind::Text), text(s) {}
  FormatArg(const char *s) : kind(Kind::Text), text(s) {}
  FormatArg(double v) : kind(Kind::Real), real(v) {}
  FormatArg(float v) : kind(Kind::Real), real(v) {}
  template <typename T, typename = std::enable_if_t<std::is_integral_v<T>>>
  FormatArg(T v)
      : kind(std::is_signed_v<T> ? Kind::Signed : Kind::Unsigned), i(static_cast<int64_t>(v)),
        u(static_cast<uint64_t>(v)) {}
};

std::string formatArgs(std::string_view format, const FormatArg *args, size_t count);

template <typename... A> std::string format(std::string_view f, const A &...args) {
  if constexpr (sizeof...(A) == 0) {
    return formatArgs(f, nullptr, 0);
  } else {
    const FormatArg list[] = {FormatArg(args)...};
    return formatArgs(f, list, sizeof...(A));
  }
}

// The whole of `text` as a number (integer or floating point); false if anything is left over.
template <typename T> bool parseNumber(const std::string &text, T &out) {
  const char *end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && p == end;
}

} // namespace soma::rt
