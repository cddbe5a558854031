// The flatbench command line (CLI11): run, list, show, report, merge, catalog, convert.
#pragma once

namespace fb {

// Exit codes: 0 ok; 1 some jobs failed (for `run`: a job of the selection is failed, now or
// from an earlier run, or was interrupted by a full disk, a lock or an I/O error); 2 bad input
// (config, arguments, files); 3 internal error.
int cli_main(int argc, char** argv);

}  // namespace fb
