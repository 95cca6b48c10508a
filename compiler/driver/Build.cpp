// Linking uses the system's C compiler driver ($SOMA_CC, else cc) with Soma's runtime archive;
// a static library is written here, as an archive of the model's object and the runtime's.
#include "driver/Build.h"

#include "codegen/Package.h"
#include "soma/Safetensors.h"

#include <llvm/Object/Archive.h>
#include <llvm/Object/ArchiveWriter.h>
#include <llvm/Support/MemoryBuffer.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace soma {

namespace fs = std::filesystem;

namespace {

std::string runtimeArchive() {
  if (const char *p = std::getenv("SOMA_RUNTIME_LIB"))
    return p;
  return SOMA_RUNTIME_LIBRARY; // the build tree's, from CMake
}

std::vector<std::string> linkLibraries() {
  std::vector<std::string> libs = {"-lstdc++", "-lm", "-lmvec", "-lpthread"};
  std::string extra = SOMA_RUNTIME_LINK_FLAGS; // the sanitizers, when the runtime was built with them
  for (size_t at = 0; at < extra.size();) {
    size_t end = extra.find(' ', at);
    if (end == std::string::npos)
      end = extra.size();
    if (end > at)
      libs.push_back(extra.substr(at, end - at));
    at = end + 1;
  }
  return libs;
}

// Runs argv; returns "" or an error.
std::string run(const std::vector<std::string> &args) {
  std::vector<char *> argv;
  for (const std::string &a : args)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
  if (rc != 0)
    return "soma: error: cannot run '" + args[0] + "' to link (" + std::strerror(rc) +
           "); a C compiler driver is needed: install gcc, or set SOMA_CC";
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return "soma: error: linking with '" + args[0] + "' failed";
  return "";
}

// The object in a temporary file, removed on scope exit.
struct TempObject {
  std::string path;
  std::string error;
  explicit TempObject(const std::string &bytes) {
    std::string dir = fs::temp_directory_path().string();
    std::string templ = dir + "/soma-XXXXXX.o";
    int fd = mkstemps(templ.data(), 2);
    if (fd < 0) {
      error = templ + ": error: cannot create a temporary file: " + std::strerror(errno);
      return;
    }
    path = templ;
    close(fd);
    error = rt::writeFileAtomically(path, {{bytes.data(), bytes.size()}});
  }
  ~TempObject() {
    if (!path.empty())
      ::unlink(path.c_str());
  }
};

std::string writeArchive(const std::string &path, const std::string &object, const std::string &name) {
  std::vector<llvm::NewArchiveMember> members;
  std::string member = name + ".o"; // outlives the write: members refer to it
  members.emplace_back(llvm::MemoryBufferRef(object, member));
  auto runtime = llvm::MemoryBuffer::getFile(runtimeArchive());
  if (!runtime)
    return runtimeArchive() + ": error: cannot read Soma's runtime: " + runtime.getError().message();
  auto archive = llvm::object::Archive::create((*runtime)->getMemBufferRef());
  if (!archive)
    return runtimeArchive() + ": error: " + llvm::toString(archive.takeError());
  llvm::Error err = llvm::Error::success();
  for (const llvm::object::Archive::Child &c : (*archive)->children(err)) {
    auto member = llvm::NewArchiveMember::getOldMember(c, true);
    if (!member)
      return runtimeArchive() + ": error: " + llvm::toString(member.takeError());
    members.push_back(std::move(*member));
  }
  if (err)
    return runtimeArchive() + ": error: " + llvm::toString(std::move(err));
  if (llvm::Error e = llvm::writeArchive(path, members, llvm::SymtabWritingMode::NormalSymtab,
                                         llvm::object::Archive::K_GNU, true, false))
    return path + ": error: cannot write: " + llvm::toString(std::move(e));
  return "";
}

// Every message already names its file, or starts with "soma: error:".
int failWith(const std::string &error) {
  std::fprintf(stderr, "%s\n", error.c_str());
  return 1;
}

// The model's object linked with the runtime by the C compiler driver: `before` (the output), the
// object and the archive, then `extra`. Returns "" or an error.
std::string link(const std::string &object, const std::vector<std::string> &before,
                 const std::vector<std::string> &extra) {
  TempObject obj(object);
  if (!obj.error.empty())
    return obj.error;
  const char *cc = std::getenv("SOMA_CC");
  std::vector<std::string> args = {cc && *cc ? cc : "cc"};
  args.insert(args.end(), before.begin(), before.end());
  args.push_back(obj.path);
  args.push_back(runtimeArchive());
  args.insert(args.end(), extra.begin(), extra.end());
  for (const std::string &l : linkLibraries())
    args.push_back(l);
  return run(args);
}

} // namespace

int buildOutputs(const CompiledModel &m, const BuildOptions &opts) {
  if (!opts.lib) {
    fs::path parent = fs::path(opts.output).parent_path();
    std::string dir = parent.empty() ? "." : parent.string();
    if (fs::is_directory(opts.output))
      return failWith(opts.output + ": error: is a directory; -o names the executable (--lib writes to a directory)");
    if (::access(dir.c_str(), W_OK) != 0)
      return failWith(opts.output + ": error: cannot write: " + std::strerror(errno));
    if (std::string e = link(m.objects.front(), {"-o", opts.output}, {}); !e.empty())
      return failWith(e);
    return 0;
  }
  std::error_code ec;
  fs::create_directories(opts.output, ec);
  if (ec || !fs::is_directory(opts.output))
    return failWith(opts.output + ": error: cannot create the output directory" + (ec ? ": " + ec.message() : ""));
  std::string dir = opts.output + (opts.output.back() == '/' ? "" : "/");
  std::string header = codegen::libraryHeader(m.libName, m.info);
  if (std::string e = rt::writeFileAtomically(dir + m.libName + ".h", {{header.data(), header.size()}}); !e.empty())
    return failWith(e);
  if (opts.shared) { // the runtime's own symbols stay inside; the model's C functions are the interface
    if (std::string e =
            link(m.objects.front(), {"-shared", "-o", dir + "lib" + m.libName + ".so"}, {"-Wl,--exclude-libs,ALL"});
        !e.empty())
      return failWith(e);
    return 0;
  }
  if (std::string e = writeArchive(dir + "lib" + m.libName + ".a", m.objects.front(), m.libName); !e.empty())
    return failWith(e);
  return 0;
}

} // namespace soma
