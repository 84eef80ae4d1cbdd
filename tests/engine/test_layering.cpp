// The engine's layers (engine/CMakeLists.txt: core < kernels < exec < models < runtime <
// train) as the sources use them: no file includes a header of a layer above its own, every
// engine folder and public header belongs to exactly one layer, and no engine file includes Qt,
// GL or ImGui. The linker enforces the same order on symbols; this names the offending line.
#include <QDir>
#include <QDirIterator>
#include <QFile>
#include <QMap>
#include <QRegularExpression>
#include <QtTest>

namespace {

const QString kEngine = QStringLiteral(ATTNSCOPE_TEST_DATA) + "/../../engine";

struct Layers {
  QStringList order;          // lowest first
  QMap<QString, int> dir;     // "attention" -> 1, "backend/cuda" -> 2
  QMap<QString, int> header;  // "attnscope/model.h" -> 3
};

// The set(ENGINE_LAYERS ...), set(ENGINE_<layer>_DIRS ...) and set(ENGINE_<layer>_HEADERS ...)
// lines of engine/CMakeLists.txt.
Layers read_layers(QString* error) {
  Layers l;
  QFile f(kEngine + "/CMakeLists.txt");
  if (!f.open(QIODevice::ReadOnly)) {
    *error = "cannot read " + f.fileName();
    return l;
  }
  const QString text = QString::fromUtf8(f.readAll());
  const QRegularExpression set(QStringLiteral("^set\\((ENGINE_\\w+)\\s+([^)]*)\\)"),
                               QRegularExpression::MultilineOption);
  QMap<QString, QStringList> vars;
  for (auto it = set.globalMatch(text); it.hasNext();) {
    const auto m = it.next();
    vars[m.captured(1)] =
        m.captured(2).split(QRegularExpression(QStringLiteral("\\s+")), Qt::SkipEmptyParts);
  }
  l.order = vars.value("ENGINE_LAYERS");
  for (int i = 0; i < l.order.size(); ++i) {
    for (const QString& d : vars.value("ENGINE_" + l.order[i] + "_DIRS")) {
      if (l.dir.contains(d)) *error += d + " is in two layers; ";
      l.dir[d] = i;
    }
    for (const QString& h : vars.value("ENGINE_" + l.order[i] + "_HEADERS")) {
      if (l.header.contains("attnscope/" + h)) *error += h + " is in two layers; ";
      l.header["attnscope/" + h] = i;
    }
  }
  return l;
}

// The layer of an engine path ("models/common.h", "backend/cuda/attn_core.cuh"): the longest
// listed folder that holds it; -1 when none does.
int layer_of_path(const Layers& l, const QString& path) {
  int best = -1, best_len = -1;
  for (auto it = l.dir.begin(); it != l.dir.end(); ++it)
    if (path.startsWith(it.key() + "/") && it.key().size() > best_len) {
      best = it.value();
      best_len = int(it.key().size());
    }
  return best;
}

// The include lines of one engine file (rel: its path under engine/) that break the layers.
QStringList violations_in(const Layers& l, const QString& rel, const QString& text, int* checked) {
  static const QRegularExpression inc(QStringLiteral("^\\s*#\\s*include\\s*[<\"]([^\">]+)[\">]"),
                                      QRegularExpression::MultilineOption);
  static const QRegularExpression forbidden(QStringLiteral("^(Q[A-Z]\\w*|Qt\\w*/|GL/|imgui|glm/)"));
  const int own =
      rel.startsWith("include/") ? l.header.value(rel.mid(8), -1) : layer_of_path(l, rel);
  if (own < 0) return {rel + " is in no layer"};
  QStringList out;
  for (auto m = inc.globalMatch(text); m.hasNext();) {
    const QString target = m.next().captured(1);
    if (forbidden.match(target).hasMatch())
      out << rel + " includes " + target + " (the engine never includes Qt, GL or ImGui)";
    int layer = -1;
    if (target.startsWith("attnscope/"))
      layer = l.header.value(target, -1);
    else if (target.contains('/'))
      layer = layer_of_path(l, target);
    if (layer < 0) continue;  // a system or same-folder header
    ++*checked;
    if (layer > own)
      out << QString("%1 (%2) includes %3 (%4)").arg(rel, l.order[own], target, l.order[layer]);
  }
  return out;
}

}  // namespace

class TestLayering : public QObject {
  Q_OBJECT
 private slots:
  void layersAreDeclared() {
    QString error;
    const Layers l = read_layers(&error);
    QVERIFY2(error.isEmpty(), qPrintable(error));
    QCOMPARE(l.order, QStringList({"core", "kernels", "exec", "models", "runtime", "train"}));
    // Every folder with sources is in a layer; every public header too.
    for (QDirIterator it(kEngine, {"*.cpp", "*.cu"}, QDir::Files, QDirIterator::Subdirectories);
         it.hasNext();) {
      const QString rel = QDir(kEngine).relativeFilePath(it.next());
      QVERIFY2(layer_of_path(l, rel) >= 0, qPrintable(rel + " is in no layer's folder"));
    }
    const QStringList headers =
        QDir(kEngine + "/include/attnscope").entryList({"*.h"}, QDir::Files);
    QVERIFY(headers.size() >= 10);
    for (const QString& h : headers)
      QVERIFY2(l.header.contains("attnscope/" + h),
               qPrintable("include/attnscope/" + h + " is in no layer (engine/CMakeLists.txt)"));
  }

  void noFileIncludesALayerAbove() {
    QString error;
    const Layers l = read_layers(&error);
    QVERIFY2(error.isEmpty(), qPrintable(error));
    QStringList violations;
    int files = 0, checked = 0;
    for (QDirIterator it(kEngine, {"*.cpp", "*.h", "*.cu", "*.cuh"}, QDir::Files,
                         QDirIterator::Subdirectories);
         it.hasNext();) {
      const QString abs = it.next();
      QFile f(abs);
      QVERIFY(f.open(QIODevice::ReadOnly));
      ++files;
      violations << violations_in(l, QDir(kEngine).relativeFilePath(abs),
                                  QString::fromUtf8(f.readAll()), &checked);
    }
    qInfo("%d engine files, %d includes of engine headers checked", files, checked);
    QVERIFY(files > 50 && checked > 100);
    QVERIFY2(violations.isEmpty(), qPrintable(violations.join("\n")));
  }

  // The check itself: a family including the trainer, a kernel including a model header, a
  // public header of the kernels including Qt are each caught; the same lines one layer
  // higher are not.
  void aViolationIsReported() {
    QString error;
    const Layers l = read_layers(&error);
    QVERIFY2(error.isEmpty(), qPrintable(error));
    int checked = 0;
    QCOMPARE(
        violations_in(l, "models/reformer.cpp", "#include \"train/trainer.h\"\n", &checked).size(),
        1);
    QCOMPARE(
        violations_in(l, "train/trainer.cpp", "#include \"train/trainer.h\"\n", &checked).size(),
        0);
    QCOMPARE(violations_in(l, "attention/dense.cpp", "  #  include <attnscope/model.h>\n", &checked)
                 .size(),
             1);
    QCOMPARE(
        violations_in(l, "backend/cuda/attn_core.cuh", "#include \"models/common.h\"\n", &checked)
            .size(),
        1);
    QCOMPARE(
        violations_in(l, "backend/model_placed.cpp", "#include \"models/common.h\"\n", &checked)
            .size(),
        0);
    QCOMPARE(
        violations_in(l, "include/attnscope/attention.h", "#include <QString>\n", &checked).size(),
        1);
    QCOMPARE(checked, 5);
  }
};

QTEST_APPLESS_MAIN(TestLayering)
#include "test_layering.moc"
