#pragma once
/// The `focus` command line (train, eval, predict, generate, classify, data fetch, plot).
namespace focus::cli {
/// Runs the command line; returns the process exit status (0 success, 1 error, 2 usage,
/// 130 interrupted). Errors are printed as "focus: error: ..." on stderr.
int main(int argc, char** argv);
}  // namespace focus::cli
