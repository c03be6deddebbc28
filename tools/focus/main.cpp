// The `focus` command line: see tools/focus/cli.h.
#include "tools/focus/cli.h"

int main(int argc, char** argv) { return focus::cli::main(argc, argv); }
