#pragma once
/// Internal helpers of models/datasets (files, processes, gzip); not part of the public API.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace focus::datasets::detail {

/// The whole file; missing or unreadable -> focus::Error "[what] cannot read PATH: reason".
std::string read_file(const std::filesystem::path& path, const std::string& what);

/// Writes bytes to path (created or truncated); failure -> focus::Error naming the path.
void write_file(const std::filesystem::path& path, std::string_view bytes, const std::string& what);

/// Byte offset of the first invalid UTF-8 sequence, or -1 when all valid.
int64_t first_invalid_utf8(std::string_view text);

/// Decompresses gzip data (one or more members); corrupt data -> focus::Error naming source.
std::string gunzip(std::string_view gz, const std::string& source);

/// The full path of an executable found on $PATH, or "" when none.
std::string find_program(const std::string& name);

/// Runs argv (argv[0] looked up on $PATH) in folder cwd with stdin from /dev/null and
/// stdout+stderr appended to log_file; returns the exit status (128+signal when killed).
int run_command(const std::vector<std::string>& argv, const std::filesystem::path& cwd,
                const std::filesystem::path& log_file);

/// Checks that the file at path has `size` bytes and SHA-256 `sha256`; else focus::Error
/// "[data fetch] NAME: ..." saying which differs.
void verify_file(const std::filesystem::path& path, uint64_t size, const std::string& sha256,
                 const std::string& name);

}  // namespace focus::datasets::detail
