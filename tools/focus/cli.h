#pragma once
/// The `focus` command line (train, eval, predict, generate, classify, data, plot, models).
#include <iosfwd>
#include <string>
#include <vector>

namespace focus::cli {

/// Exit statuses of the command line.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;        ///< a focus::Error (bad input, missing file, ...)
inline constexpr int kExitUsage = 2;        ///< bad flags or arguments (CLI11's message + a hint)
inline constexpr int kExitInterrupted = 130;///< training stopped by Ctrl-C (a checkpoint was saved)

/// Runs the command line on argv[1..]; returns the process exit status. Errors are printed as
/// "focus: error: ..." on stderr.
int main(int argc, char** argv);

/// The same on an argument list without the program name, writing to out / err (tests).
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace focus::cli
