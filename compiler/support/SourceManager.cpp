// Line tables are built once per file; lookups are binary searches.
#include "support/SourceManager.h"

#include "soma/File.h"

#include <algorithm>

namespace soma {

size_t utf8Sequence(std::string_view text, size_t at) {
  auto byte = [&](size_t i) { return at + i < text.size() ? static_cast<unsigned char>(text[at + i]) : 0u; };
  unsigned b0 = byte(0);
  if (b0 < 0x80)
    return 1;
  size_t n;
  unsigned lo = 0x80, hi = 0xBF; // the range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF)
    n = 2;
  else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0)
      lo = 0xA0; // overlong
    if (b0 == 0xED)
      hi = 0x9F; // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0)
      lo = 0x90; // overlong
    if (b0 == 0xF4)
      hi = 0x8F; // past U+10FFFF
  } else
    return 0;
  if (byte(1) < lo || byte(1) > hi)
    return 0;
  for (size_t i = 2; i < n; ++i)
    if (byte(i) < 0x80 || byte(i) > 0xBF)
      return 0;
  return n;
}

size_t invalidUtf8(std::string_view text, size_t from) {
  for (size_t i = from; i < text.size();) {
    size_t n = utf8Sequence(text, i);
    if (n == 0)
      return i;
    i += n;
  }
  return std::string_view::npos;
}

uint32_t SourceManager::addBuffer(std::string path, std::string text) {
  File f{std::move(path), std::move(text), {0}};
  for (uint32_t i = 0; i < f.text.size(); ++i)
    if (f.text[i] == '\n')
      f.lineStarts.push_back(i + 1);
  files_.push_back(std::move(f));
  return static_cast<uint32_t>(files_.size());
}

uint32_t SourceManager::addFile(const std::string &path, std::string &error) {
  std::string text;
  error = rt::readRegularFile(path, text, kMaxFileBytes);
  if (!error.empty())
    return 0;
  return addBuffer(path, std::move(text));
}

LineCol SourceManager::lineCol(SourceLoc loc) const {
  const File &f = files_.at(loc.file - 1);
  auto it = std::upper_bound(f.lineStarts.begin(), f.lineStarts.end(), loc.offset);
  unsigned line = static_cast<unsigned>(it - f.lineStarts.begin());
  return {line, loc.offset - f.lineStarts[line - 1] + 1};
}

std::string_view SourceManager::lineText(SourceLoc loc) const {
  const File &f = files_.at(loc.file - 1);
  LineCol lc = lineCol(loc);
  size_t begin = f.lineStarts[lc.line - 1];
  size_t end = f.text.find('\n', begin);
  if (end == std::string::npos)
    end = f.text.size();
  if (end > begin && f.text[end - 1] == '\r')
    --end;
  return std::string_view(f.text).substr(begin, end - begin);
}

SourceLoc SourceManager::locAt(uint32_t file, unsigned line, unsigned col) const {
  const File &f = files_.at(file - 1);
  if (line == 0 || line > f.lineStarts.size())
    return {file, static_cast<uint32_t>(f.text.size())};
  return {file, f.lineStarts[line - 1] + (col ? col - 1 : 0)};
}

} // namespace soma
