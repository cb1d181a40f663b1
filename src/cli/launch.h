// `lorakit train --nproc N`: starts N copies of this command line as the ranks of one data-parallel run on
// this machine (RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT set as torchrun does), waits for
// them, and when one fails stops the others. docs/distributed.md.
#pragma once
#include <string>
#include <vector>

namespace lorakit::cli {

// The process's own command line (main records it), for the launcher to start again.
void set_command_line(int argc, char** argv);

// Thrown by a command that has finished with this exit status (main returns it).
struct ExitWith {
  int code;
};

// Runs the ranks; returns the exit status: 0 when every rank succeeded, else the first failing rank's
// (128 + signal when it was killed). `timeout_seconds`: how long the others get to stop after a failure.
int launch_local_ranks(int nproc, double timeout_seconds);

}  // namespace lorakit::cli
