// Reading whole files safely: every reader of the compiler and the runtime goes through here, so
// that a device, a directory or a pipe given as a path (/dev/zero, /dev/stdin) is refused at once
// instead of being read forever, and a read is bounded by the size the file has when opened.
#pragma once
#include <cstdint>
#include <string>

namespace soma::rt {

// Reads the regular file `path` into `data`. Returns "" on success, else what went wrong
// ("cannot open file: No such file or directory", "not a regular file", "is 20000000 bytes;
// at most 16777216 are read"), for the caller to prefix with the path.
std::string readRegularFile(const std::string &path, std::string &data, uint64_t maxBytes = UINT64_MAX);

// Whether `path` may be replaced by a new file (checkpoints, weights, metrics): it does not exist,
// or it is a regular file (not a symlink, a device, a directory or a pipe). Returns "" if so, else
// the reason.
std::string replaceableFile(const std::string &path);

} // namespace soma::rt
