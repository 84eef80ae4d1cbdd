// The summary of a loaded model that the Model panel and the overlay show: family, config,
// parameter count and what attention each layer runs.
#pragma once

#include <string>

#include "snapshot.h"

namespace session {

ModelSummary model_summarize(const attnscope::ModelConfig& cfg, const std::string& path,
                             size_t file_bytes);

}  // namespace session
