#include "soma/File.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace soma::rt {

std::string readRegularFile(const std::string &path, std::string &data, uint64_t maxBytes) {
  data.clear();
  // O_NONBLOCK: opening a FIFO without a writer must not block before the check below.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return std::string("cannot open file: ") + std::strerror(errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return std::string("cannot read file: ") + std::strerror(e);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return S_ISDIR(st.st_mode) ? "is a directory, not a file" : "not a regular file (a device, pipe or socket)";
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > maxBytes) {
    ::close(fd);
    return "is " + std::to_string(size) + " bytes; at most " + std::to_string(maxBytes) + " are read";
  }
  try {
    data.resize(size);
  } catch (const std::exception &) {
    ::close(fd);
    return "is " + std::to_string(size) + " bytes, more than there is memory for";
  }
  uint64_t done = 0;
  while (done < size) {
    ssize_t n = ::read(fd, data.data() + done, size - done);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return std::string("cannot read file: ") + std::strerror(e);
    }
    if (n == 0) // the file shrank while being read
      break;
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
  data.resize(done);
  return "";
}

std::string replaceableFile(const std::string &path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0)
    return errno == ENOENT ? "" : std::string("cannot inspect: ") + std::strerror(errno);
  if (S_ISLNK(st.st_mode))
    return "is a symbolic link; give the path of the file itself";
  if (S_ISDIR(st.st_mode))
    return "is a directory";
  if (!S_ISREG(st.st_mode))
    return "is not a regular file (a device, pipe or socket); it is not replaced";
  return "";
}

} // namespace soma::rt
