// The command line of `soma run` and built programs (parseRunFlag, checkRunOptions): the input's
// lines are the arguments. Each is taken, refused with a message, or left to the caller.
#include "soma/Train.h"

#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <vector>

using namespace soma::rt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<std::string> args(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '\n')
      args.emplace_back();
    else
      args.back() += static_cast<char>(data[i]);
  }
  // The refusals print to stderr, thousands a second: silenced unless SOMA_FUZZ_VERBOSE is set
  // (to see a sanitizer's report when replaying a crash).
  static bool verbose = std::getenv("SOMA_FUZZ_VERBOSE") != nullptr;
  static int quiet = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  int saved = verbose ? -1 : ::dup(2);
  if (!verbose)
    ::dup2(quiet, 2);
  RunOptions opts;
  for (size_t i = 0; i < args.size(); ++i)
    if (parseRunFlag(args, i, opts, "fuzz") < 0)
      break;
  checkRunOptions(opts);
  if (!verbose) {
    ::dup2(saved, 2);
    ::close(saved);
  }
  return 0;
}
