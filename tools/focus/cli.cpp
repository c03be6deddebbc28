#include "tools/focus/cli.h"

#include <cstdio>

namespace focus::cli {
int main(int argc, char** argv) {
  std::fprintf(stderr, "focus: the command line is being written\n");
  return 1;
}
}  // namespace focus::cli
