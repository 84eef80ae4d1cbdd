// The attnscope-cli commands. Each takes the arguments after its name and returns a Status;
// main() turns it into the exit code (2 for bad usage or input, 1 for runtime failures).
#pragma once

#include <string>
#include <vector>

#include "args.h"
#include "attnscope/backend.h"
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

// The test-time knobs generate and eval take (Perceiver AR: --latents M, --latent-cache
// exact|cached), as flags for a command's table; apply_test_time_knobs sets them on a model's
// stored config and refuses a knob of another family by name.
// (Functions, not constants: the commands' flag tables are built during static
// initialisation in other files.)
Flag latents_flag();
Flag latent_cache_flag();
attnscope::Status apply_test_time_knobs(const Args& args, attnscope::ModelConfig* cfg);

// Loads a model file and builds its model on the CPU, with the test-time knobs of args when
// given; kInvalidArgument for anything unusable.
attnscope::Expected<std::unique_ptr<attnscope::Model>> load_model(const std::string& path,
                                                                  const Args* knobs = nullptr);

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
                                                                     std::string* note,
                                                                     const Args* knobs = nullptr);

}  // namespace cli
