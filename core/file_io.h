// core/file_io.h: the one way focus writes a file it must never leave half-written
// (checkpoints, safetensors, run configs, reports, pictures), and the cleanup of what a killed
// writer leaves. Internal to focus; not part of the public API.
#pragma once

#include <cerrno>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace focus::io {

/// The system's text for an errno value ("No space left on device").
std::string errno_text(int err = errno);

/// Owns a file descriptor: closes it at the end of its scope unless released.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    const int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

/// Receives the bytes of a file, piece by piece.
using WriteFn = std::function<void(const void* data, size_t size)>;

/// Writes path atomically: the bytes go to a hidden temporary ".NAME.tmp.XXXXXX" in the same
/// directory, which is flushed to disk (fsync) and renamed over path, and the directory is
/// flushed too. produce(write) calls write for each piece; when it throws or any system call
/// fails, the temporary is removed, path keeps its earlier contents, and a focus::Error
/// "[op] cannot write 'path': <what failed>: <errno text>" is thrown (produce's own
/// focus::Error passes through unchanged).
void write_file_atomic(const std::string& path, const char* op, const std::function<void(const WriteFn&)>& produce);
void write_file_atomic(const std::string& path, const char* op, std::string_view bytes);

/// Whether a file name is one of write_file_atomic's temporaries (".NAME.tmp.XXXXXX").
bool is_temporary_name(std::string_view filename);

/// Removes the temporaries a killed writer left in dir (not its subfolders) and returns their
/// paths. Only call it where no other process can be writing into dir at the same time.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

}  // namespace focus::io
