// What the view tabs ask the engine worker for (an attention row, a pattern, LSH buckets, the
// memory curves) and the immutable InspectResult it publishes back. inspect_compute runs on
// the worker only; views hold InspectResults and never call the engine.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/inspect.h"
#include "attnscope/model.h"
#include "snapshot.h"

namespace session {

enum class InspectKind { kAttention = 0, kPattern, kLsh, kMemory, kStep, kCount };

struct InspectRequest {
  InspectKind kind = InspectKind::kAttention;
  int layer = 0;
  int64_t query = 0;    // attention, step: the query position
  int grid = 256;       // pattern: cells per side
  uint64_t serial = 0;  // set by Session::inspect; a newer request of the same kind supersedes it
};

struct FamilyCurve {
  std::string family;
  std::vector<attnscope::MemoryPoint> points;  // by length; measured ones carry figures
};

struct InspectResult {
  InspectRequest request;
  std::string error;  // empty on success; otherwise the engine's message, for the view
  std::shared_ptr<const ModelSummary> model;
  std::shared_ptr<const RunStore> run;
  int64_t n = 0;  // the tokens the result was computed on: run->tokens()[0..n)
  attnscope::AttnRow row;
  // step: the query's row in every layer (row_errors[l] non-empty where layer l has none),
  // computed on positions 0..query, as the model saw them when it generated the query.
  std::vector<attnscope::AttnRow> rows;
  std::vector<std::string> row_errors;
  std::vector<attnscope::PatternImage> patterns;  // pattern: one per head, in head order
  attnscope::LshInspect lsh;
  std::vector<FamilyCurve> curves;  // memory: one per family
};

// Lengths the memory view measures (a forward each) and the longer ones it models only.
extern const std::vector<int64_t> kMemoryMeasured;
extern const std::vector<int64_t> kMemoryAnalytic;

// Worker thread: computes req on the model and the run's first n known tokens.
std::shared_ptr<const InspectResult> inspect_compute(const attnscope::Model& model,
                                                     std::shared_ptr<const ModelSummary> summary,
                                                     std::shared_ptr<const RunStore> run,
                                                     const InspectRequest& req,
                                                     const std::atomic<bool>* cancel);

}  // namespace session
