// Export of the completion: the image at native size and a nearest-neighbour scaled copy,
// written together and atomically (engine AtomicFileSet), with a sensible default name.
#pragma once

#include <QString>
#include <QStringList>

#include "attnscope/status.h"
#include "session/snapshot.h"

namespace ui {

constexpr int kExportScale = 8;

// "shapes-32-dense-seed7.png" style: the model's file stem, the prompt's stem and the seed.
QString export_default_name(const session::Snapshot& s, const QString& prompt_path, uint64_t seed);
// The scaled copy's path beside path: "out.png" -> "out-8x.png".
QString export_scaled_path(const QString& path);
// Writes the completion (pending positions black) to path (PNG) and the scaled copy; both
// appear or neither. *written lists the files on success.
attnscope::Status export_completion_png(const session::Snapshot& s, const QString& path,
                                        QStringList* written);

}  // namespace ui
