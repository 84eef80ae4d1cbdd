// Model files for the app tests: fresh weights with random logits (so that distributions carry
// information), written with the engine's own writer into a temporary folder.
#pragma once

#include <QString>
#include <QTemporaryDir>
#include <string>

#include "attnscope/model.h"
#include "attnscope/safetensors.h"

// The path of the new file, or an empty string when the config or the write fails.
inline QString write_test_model(const QTemporaryDir& dir, const QString& name,
                                attnscope::Family family, const std::string& modality, int layers,
                                int dim, uint64_t seed) {
  using namespace attnscope;
  ModelConfig cfg;
  cfg.family = family;
  cfg.modality = *modality_parse(modality);
  cfg.layers = layers;
  cfg.dim = dim;
  cfg.heads = 4;
  cfg.seed = seed;
  if (family == Family::kReformer) cfg.lsh.chunk = 16;
  if (!config_resolve(cfg)) return {};
  InitOptions opt;
  opt.seed = seed;
  opt.zero_logits = false;
  const QString path = dir.filePath(name);
  if (!safetensors_save(path.toStdString(), cfg, model_init_weights(cfg, opt))) return {};
  return path;
}
