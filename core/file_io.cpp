#include "core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace focus::io {
namespace fs = std::filesystem;

std::string errno_text(int err) { return std::strerror(err); }

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {
constexpr std::string_view kTmpInfix = ".tmp.";
constexpr size_t kTmpSuffix = 6;  // mkstemp's XXXXXX

}  // namespace

void write_file_atomic(const std::string& path, const char* op, const std::function<void(const WriteFn&)>& produce) {
  FOCUS_CHECK(!path.empty(), "[{}] empty path", op);
  const fs::path target(path);
  FOCUS_CHECK(target.has_filename(), "[{}] '{}' names a directory, not a file", op, path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp = (dir / ("." + target.filename().string() + std::string(kTmpInfix) + "XXXXXX")).string();
  const int raw_fd = ::mkstemp(tmp.data());
  FOCUS_CHECK(raw_fd >= 0, "[{}] cannot write '{}': cannot create a temporary file in '{}': {}", op, path,
              dir.string(), errno_text());
  Fd fd(raw_fd);
  try {
    ::fchmod(fd.get(), 0644);
    produce([&](const void* data, size_t size) {
      const auto* b = static_cast<const char*>(data);
      while (size > 0) {
        const ssize_t w = ::write(fd.get(), b, std::min<size_t>(size, size_t{1} << 30));
        if (w < 0 && errno == EINTR) continue;
        FOCUS_CHECK(w > 0, "[{}] cannot write '{}': writing '{}' failed: {}", op, path, tmp,
                    w == 0 ? std::string("no progress") : errno_text());
        b += w;
        size -= static_cast<size_t>(w);
      }
    });
    FOCUS_CHECK(::fsync(fd.get()) == 0, "[{}] cannot write '{}': fsync of '{}' failed: {}", op, path, tmp,
                errno_text());
    FOCUS_CHECK(::close(fd.release()) == 0, "[{}] cannot write '{}': closing '{}' failed: {}", op, path, tmp,
                errno_text());
    FOCUS_CHECK(::rename(tmp.c_str(), path.c_str()) == 0, "[{}] cannot write '{}': renaming '{}' over it failed: {}",
                op, path, tmp, errno_text());
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  // Make the rename durable.
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  FOCUS_CHECK(dfd.get() >= 0, "[{}] wrote '{}' but cannot open its directory '{}' to flush it: {}", op, path,
              dir.string(), errno_text());
  FOCUS_CHECK(::fsync(dfd.get()) == 0, "[{}] wrote '{}' but flushing its directory '{}' failed: {}", op, path,
              dir.string(), errno_text());
}

void write_file_atomic(const std::string& path, const char* op, std::string_view bytes) {
  write_file_atomic(path, op, [&](const WriteFn& write) { write(bytes.data(), bytes.size()); });
}

bool is_temporary_name(std::string_view name) {
  // "." + NAME + ".tmp." + 6 characters
  if (name.size() < 1 + 1 + kTmpInfix.size() + kTmpSuffix || name.front() != '.') return false;
  return name.substr(name.size() - kTmpSuffix - kTmpInfix.size(), kTmpInfix.size()) == kTmpInfix;
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::error_code ec2;
    if (!entry.is_regular_file(ec2) || !is_temporary_name(entry.path().filename().string())) continue;
    if (fs::remove(entry.path(), ec2)) removed.push_back(entry.path().string());
  }
  return removed;
}

}  // namespace focus::io
