#pragma once
/// focus::Error and the FOCUS_CHECK macro: every invalid call throws an Error whose
/// message starts with the op in brackets, e.g. "[matmul] inner dimensions differ: ...".
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace focus {

/// The one exception type focus throws for user mistakes and untrusted input.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
[[noreturn]] void throw_error(std::string msg);
}  // namespace detail

}  // namespace focus

/// Throws focus::Error(fmt::format(...)) when cond is false. The format string should
/// start with "[op] ".
#define FOCUS_CHECK(cond, ...)                                     \
  do {                                                             \
    if (!(cond)) [[unlikely]] {                                    \
      ::focus::detail::throw_error(::fmt::format(__VA_ARGS__));    \
    }                                                              \
  } while (0)

/// Unconditional throw with a formatted message.
#define FOCUS_FAIL(...) ::focus::detail::throw_error(::fmt::format(__VA_ARGS__))
