// Owns the text of every source file and maps byte offsets to line:col.
// Locations elsewhere in the compiler are (file id, offset) pairs; this is the only place that knows lines.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace soma {

struct SourceLoc {
  uint32_t file = 0;   // 0 means "no location"; files are numbered from 1
  uint32_t offset = 0; // byte offset into the file
  bool valid() const { return file != 0; }
};

struct SourceRange {
  SourceLoc begin, end; // end is one past the last byte
};

struct LineCol {
  unsigned line = 0, col = 0; // both 1-based
};

// The byte offset of the first byte of `text` that does not begin a well-formed UTF-8 sequence
// (overlong forms, surrogates and code points past U+10FFFF are ill-formed), or npos. `length`
// receives the length of the sequence at `offset` when it is well-formed.
size_t invalidUtf8(std::string_view text, size_t from = 0);
// The length of the well-formed UTF-8 sequence at text[at], or 0 if it is ill-formed.
size_t utf8Sequence(std::string_view text, size_t at);

class SourceManager {
public:
  // Adds a buffer and returns its id (>= 1).
  uint32_t addBuffer(std::string path, std::string text);
  // Model files are text of at most this size: offsets are 32-bit, and no model needs more.
  static constexpr uint64_t kMaxFileBytes = uint64_t{16} << 20;
  // Reads a regular file of at most kMaxFileBytes; returns 0 and sets `error` if it cannot be read.
  uint32_t addFile(const std::string &path, std::string &error);

  const std::string &path(uint32_t file) const { return files_.at(file - 1).path; }
  std::string_view text(uint32_t file) const { return files_.at(file - 1).text; }
  LineCol lineCol(SourceLoc loc) const;
  // The text of the line containing `loc`, without its newline.
  std::string_view lineText(SourceLoc loc) const;
  // Offset of the start of 1-based `line` (column 1).
  SourceLoc locAt(uint32_t file, unsigned line, unsigned col) const;

private:
  struct File {
    std::string path, text;
    std::vector<uint32_t> lineStarts;
  };
  std::vector<File> files_;
};

} // namespace soma
