// flatbench: the command-line tool. A thin main: every command is a few calls into the library.
#include "app/cli.h"

int main(int argc, char** argv) { return fb::cli_main(argc, argv); }
