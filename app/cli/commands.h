// The attnscope-cli commands. Each takes the arguments after its name and returns a Status;
// main() turns it into the exit code (2 for bad usage or input, 1 for runtime failures).
#pragma once

#include <string>
#include <vector>

#include "attnscope/cuda.h"
#include "attnscope/model.h"
#include "attnscope/status.h"

namespace cli {

class Args;

struct Context {
  const attnscope::CancelFlag* cancel = nullptr;  // set by SIGINT
  bool progress = false;                          // stderr is a terminal
};

using Argv = std::vector<std::string>;
attnscope::Status cmd_init(const Argv& argv, const Context& ctx);
attnscope::Status cmd_info(const Argv& argv, const Context& ctx);
attnscope::Status cmd_convert(const Argv& argv, const Context& ctx);
attnscope::Status cmd_generate(const Argv& argv, const Context& ctx);
attnscope::Status cmd_eval(const Argv& argv, const Context& ctx);
attnscope::Status cmd_bench(const Argv& argv, const Context& ctx);
attnscope::Status cmd_train(const Argv& argv, const Context& ctx);
attnscope::Status cmd_memory(const Argv& argv, const Context& ctx);

// Loads a model file and builds its model on the CPU; kInvalidArgument for anything unusable.
attnscope::Expected<std::unique_ptr<attnscope::Model>> load_model(const std::string& path);

// Where a command's model runs: --device cpu|cuda and --precision f32|tf32|bf16 (cuda only).
struct DevicePick {
  bool cuda = false;
  attnscope::CudaPrecision precision = attnscope::CudaPrecision::kF32;
};
attnscope::Expected<DevicePick> device_from_args(const Args& args);
// load_model on the device asked for (model_create_placed): the CPU model when the device
// cannot run it, and *note says which backend runs it and why.
attnscope::Expected<std::unique_ptr<attnscope::Model>> load_model_on(const std::string& path,
                                                                     const DevicePick& device,
                                                                     attnscope::ModelUse use,
                                                                     std::string* note);

}  // namespace cli
