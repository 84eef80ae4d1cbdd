// Model panel: the loaded model's family, configuration, parameter count, the attention kind
// of every layer and the engine's memory by category (current and peak), from snapshots.
#pragma once

#include <QWidget>

#include "session/snapshot.h"

class QLabel;
class QListWidget;
class QTableWidget;

namespace ui {

class ModelPanel : public QWidget {
  Q_OBJECT

 public:
  explicit ModelPanel(QWidget* parent = nullptr);
  void show_snapshot(const session::Snapshot& s);
  // The memory table (tests check that its numbers fit their columns).
  QTableWidget* memory_table() const { return memory_; }

 private:
  QLabel* hint_;
  QLabel* file_;
  QLabel* family_;
  QLabel* config_;
  QLabel* params_;
  QListWidget* layers_;
  QTableWidget* memory_;
  const session::ModelSummary* shown_model_ = nullptr;
};

}  // namespace ui
