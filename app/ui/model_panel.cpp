// The Model panel's widgets and how a snapshot fills them.
#include "model_panel.h"

#include <QFileInfo>
#include <QFontMetrics>
#include <QFormLayout>
#include <QHeaderView>
#include <QLabel>
#include <QListWidget>
#include <QTableWidget>
#include <QVBoxLayout>
#include <algorithm>

namespace ui {

namespace {
constexpr int kMemRows = static_cast<int>(attnscope::MemCategory::kCount) + 1;
}

ModelPanel::ModelPanel(QWidget* parent) : QWidget(parent) {
  auto* layout = new QVBoxLayout(this);
  hint_ = new QLabel(tr("Open a model (Ctrl+O)"), this);
  hint_->setWordWrap(true);
  layout->addWidget(hint_);

  auto* form = new QFormLayout;
  form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
  auto make_label = [this] {
    auto* l = new QLabel(this);
    l->setTextInteractionFlags(Qt::TextSelectableByMouse);
    l->setWordWrap(true);
    l->setText(QStringLiteral("—"));
    return l;
  };
  file_ = make_label();
  family_ = make_label();
  config_ = make_label();
  params_ = make_label();
  form->addRow(tr("File"), file_);
  form->addRow(tr("Family"), family_);
  form->addRow(tr("Config"), config_);
  form->addRow(tr("Parameters"), params_);
  layout->addLayout(form);

  layout->addWidget(new QLabel(tr("Attention per layer"), this));
  layers_ = new QListWidget(this);
  layout->addWidget(layers_);

  layout->addWidget(new QLabel(tr("Memory by category"), this));
  memory_ = new QTableWidget(kMemRows, 2, this);
  memory_->setHorizontalHeaderLabels({tr("Current"), tr("Peak")});
  QStringList rows;
  for (int c = 0; c < static_cast<int>(attnscope::MemCategory::kCount); ++c)
    rows << QString::fromLatin1(
        attnscope::mem_category_name(static_cast<attnscope::MemCategory>(c)));
  rows << tr("total");
  memory_->setVerticalHeaderLabels(rows);
  memory_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  memory_->setSelectionMode(QAbstractItemView::NoSelection);
  memory_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
  memory_->verticalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  memory_->setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
  memory_->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
  memory_->setSizeAdjustPolicy(QAbstractScrollArea::AdjustToContents);
  // Columns as wide as the widest figure ("888.8 MiB") on one line: the panel grows to fit them
  // rather than cutting or wrapping the numbers.
  memory_->setWordWrap(false);
  const QFontMetrics fm(memory_->font());
  const int column = std::max(fm.horizontalAdvance(QStringLiteral("888.8 MiB")),
                              fm.horizontalAdvance(tr("Current"))) +
                     4 * fm.averageCharWidth();
  memory_->horizontalHeader()->setMinimumSectionSize(column);
  memory_->setMinimumWidth(memory_->verticalHeader()->sizeHint().width() + 2 * column +
                           2 * memory_->frameWidth());
  for (int r = 0; r < kMemRows; ++r)
    for (int c = 0; c < 2; ++c) {
      auto* item = new QTableWidgetItem;
      item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
      memory_->setItem(r, c, item);
    }
  layout->addWidget(memory_);
  layout->addStretch(1);
}

void ModelPanel::show_snapshot(const session::Snapshot& s) {
  hint_->setVisible(!s.model);
  if (s.model.get() != shown_model_) {
    shown_model_ = s.model.get();
    layers_->clear();
    if (s.model) {
      const session::ModelSummary& m = *s.model;
      file_->setText(QFileInfo(QString::fromStdString(m.path)).fileName());
      file_->setToolTip(QString::fromStdString(m.path));
      family_->setText(QString::fromStdString(m.family));
      config_->setText(QString::fromStdString(m.config_text));
      params_->setText(QStringLiteral("%1 (%2 in the file)")
                           .arg(QLocale().toString(static_cast<qlonglong>(m.param_count)),
                                QString::fromStdString(attnscope::mem_format_bytes(
                                    static_cast<double>(m.file_bytes)))));
      for (size_t l = 0; l < m.layer_kinds.size(); ++l)
        layers_->addItem(
            QStringLiteral("%1: %2").arg(l).arg(QString::fromStdString(m.layer_kinds[l])));
      // As tall as its rows, up to a dozen of them; deeper models scroll.
      const int rows = std::min(layers_->count(), 12);
      layers_->setFixedHeight(rows * layers_->sizeHintForRow(0) + 2 * layers_->frameWidth() + 4);
    } else {
      for (QLabel* l : {file_, family_, config_, params_}) l->setText(QStringLiteral("—"));
    }
  }
  auto set = [this](int row, size_t current, size_t peak) {
    memory_->item(row, 0)->setText(
        QString::fromStdString(attnscope::mem_format_bytes(static_cast<double>(current))));
    memory_->item(row, 1)->setText(
        QString::fromStdString(attnscope::mem_format_bytes(static_cast<double>(peak))));
  };
  for (int c = 0; c < kMemRows - 1; ++c) {
    const auto& f = s.memory.by_category[static_cast<size_t>(c)];
    set(c, f.current, f.peak);
  }
  set(kMemRows - 1, s.memory.total_current, s.memory.total_peak);
}

}  // namespace ui
