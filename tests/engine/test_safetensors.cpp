// The model file: round trips in F32, F16 and BF16, atomic saves, memory accounting, and a
// corpus of malformed files, each refused with its own message. With ATTNSCOPE_WRITE_MALFORMED
// set it also regenerates the small files in tests/data/malformed/ that the CLI tests use.
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSet>
#include <QTemporaryDir>
#include <QtTest>
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "attnscope/config.h"
#include "attnscope/model.h"
#include "attnscope/safetensors.h"

using namespace attnscope;

namespace {

// A valid file taken apart: the parsed header and the data buffer.
struct Parts {
  QJsonObject header;
  QByteArray data;
};

Parts split_file(const QByteArray& file) {
  quint64 len = 0;
  std::memcpy(&len, file.constData(), 8);
  const auto n = static_cast<qsizetype>(len);
  return {QJsonDocument::fromJson(file.mid(8, n)).object(), file.mid(8 + n)};
}

QByteArray with_length(quint64 len, const QByteArray& rest) {
  QByteArray out(8, '\0');
  std::memcpy(out.data(), &len, 8);
  return out + rest;
}

// Pads the header with spaces until the data buffer starts at a file offset = data_mod8 mod 8.
QByteArray assemble(QByteArray header, const QByteArray& data, int data_mod8 = 0) {
  while ((8 + header.size()) % 8 != data_mod8) header += ' ';
  return with_length(static_cast<quint64>(header.size()), header + data);
}

QByteArray assemble(const QJsonObject& header, const QByteArray& data) {
  return assemble(QJsonDocument(header).toJson(QJsonDocument::Compact), data);
}

// Tensor names in data-buffer order.
QStringList by_offset(const QJsonObject& h) {
  QStringList names;
  for (auto it = h.begin(); it != h.end(); ++it)
    if (it.key() != "__metadata__") names << it.key();
  std::sort(names.begin(), names.end(), [&](const QString& a, const QString& b) {
    return h[a].toObject()["data_offsets"].toArray()[0].toInteger() <
           h[b].toObject()["data_offsets"].toArray()[0].toInteger();
  });
  return names;
}

QJsonObject with_field(QJsonObject h, const QString& name, const QString& key, QJsonValue v) {
  QJsonObject e = h[name].toObject();
  e[key] = v;
  h[name] = e;
  return h;
}

QJsonObject shifted(QJsonObject h, const QString& name, qint64 by) {
  QJsonArray off = h[name].toObject()["data_offsets"].toArray();
  return with_field(h, name, "data_offsets",
                    QJsonArray{off[0].toInteger() + by, off[1].toInteger() + by});
}

// The configuration inside the metadata, edited as JSON.
QJsonObject with_config_edit(QJsonObject h, const QString& key, QJsonValue v) {
  QJsonObject meta = h["__metadata__"].toObject();
  QJsonObject cfg = QJsonDocument::fromJson(meta["attnscope.config"].toString().toUtf8()).object();
  cfg[key] = v;
  meta["attnscope.config"] = QString::fromUtf8(QJsonDocument(cfg).toJson(QJsonDocument::Compact));
  h["__metadata__"] = meta;
  return h;
}

QJsonObject with_meta(QJsonObject h, const QString& key, QJsonValue v) {
  QJsonObject meta = h["__metadata__"].toObject();
  if (v.isUndefined())
    meta.remove(key);
  else
    meta[key] = v;
  h["__metadata__"] = meta;
  return h;
}

// The first 2-D tensor whose dims differ: transposing its shape keeps its byte size.
QString non_square_matrix(const QJsonObject& h) {
  for (const QString& name : by_offset(h)) {
    QJsonArray s = h[name].toObject()["shape"].toArray();
    if (s.size() == 2 && s[0].toInteger() != s[1].toInteger()) return name;
  }
  return {};
}

struct Malformed {
  QByteArray tag;  // also the file name in tests/data/malformed/ for the committed ones
  QByteArray bytes;
  QString expect;  // a substring of the refusal
};

// Every way a file can be wrong, derived from a valid file and a valid F16 one. The rows that
// write float bytes into the data (NaN, infinity) expect valid to be F32.
std::vector<Malformed> malformed_corpus(const QByteArray& valid, const QByteArray& valid_f16) {
  std::vector<Malformed> out;
  const QByteArray& f32 = valid;
  const Parts p = split_file(f32);
  const QJsonObject& h = p.header;
  const QByteArray& d = p.data;
  const QStringList order = by_offset(h);
  const qsizetype header_end = f32.size() - d.size();
  const QString past_data = "past the end of the data buffer";
  const QString past_file = "runs past the end of the file";
  const QString short_file = "shorter than the 8-byte header length";

  out.push_back({"empty", {}, short_file});
  out.push_back({"cut_at_7", f32.left(7), short_file});
  out.push_back({"cut_at_8", f32.left(8), past_file});
  out.push_back({"cut_in_header", f32.left(8 + (header_end - 8) / 2), past_file});
  out.push_back({"cut_at_data", f32.left(header_end), past_data});
  out.push_back({"truncated", f32.left(header_end + d.size() / 2), past_data});
  out.push_back({"cut_last_byte", f32.left(f32.size() - 1), past_data});
  out.push_back(
      {"header_past_end", with_length(static_cast<quint64>(f32.size()), f32.mid(8)), past_file});
  out.push_back({"header_over_100mb", with_length(200'000'000, f32.mid(8)), "100 MB limit"});
  out.push_back({"header_length_max", with_length(std::numeric_limits<quint64>::max(), f32.mid(8)),
                 "100 MB limit"});
  out.push_back({"not_json", assemble(QByteArray("this is not json"), {}), "not valid UTF-8 JSON"});
  {
    QByteArray header = f32.mid(8, header_end - 8);
    header.replace("\"attnscope\"", "\"attn\xff\xfe\"");
    out.push_back({"not_utf8", assemble(header, d), "ill-formed UTF-8"});
  }
  {
    // The reference library refuses this ("invalid JSON in header: trailing characters").
    const QByteArray header = f32.mid(8, header_end - 8) + QByteArray(8, '\0');
    out.push_back({"nul_padded_header", assemble(header, d), "NUL byte at offset"});
  }
  out.push_back({"header_array", assemble(QByteArray("[1,2,3]"), {}),
                 "header is a JSON array, not an object"});
  out.push_back({"deep_nesting",
                 assemble("{\"x\":" + QByteArray(200, '[') + QByteArray(200, ']') + "}", {}),
                 "nests deeper than 127 levels"});
  {
    const QString name = order[0];
    QJsonObject one;
    one[name] = h[name];
    QByteArray entry = QJsonDocument(one).toJson(QJsonDocument::Compact);  // {"name":{...}}
    entry = entry.mid(1, entry.size() - 2) + ",";
    QByteArray header = QJsonDocument(h).toJson(QJsonDocument::Compact);
    header.insert(1, entry);
    out.push_back({"duplicate_tensor", assemble(header, d), "duplicate key \"" + name + "\""});
    header = QJsonDocument(h).toJson(QJsonDocument::Compact);
    header.replace("\"__metadata__\":{", "\"__metadata__\":{\"attnscope.config\":\"{}\",");
    out.push_back(
        {"duplicate_metadata_key", assemble(header, d), "duplicate key \"attnscope.config\""});
  }
  out.push_back({"overlapping_offsets", assemble(shifted(h, order[1], -1), d), "overlap"});
  out.push_back({"gap", assemble(shifted(h, order.last(), 4), d + QByteArray(4, '\0')),
                 "gap of 4 bytes in the data buffer between tensors"});
  out.push_back({"trailing_bytes", assemble(h, d + QByteArray(4, '\0')),
                 "4 trailing bytes after the last tensor"});
  out.push_back({"wrong_dtype", assemble(with_field(h, order[0], "dtype", "I64"), d),
                 // a valid safetensors dtype, so the format's rule comes first: 8 bytes each
                 "bytes but I64 shape"});
  out.push_back({"dtype_not_string", assemble(with_field(h, order[0], "dtype", 4), d),
                 "dtype must be a string"});
  out.push_back({"dtype_size_mismatch", assemble(with_field(h, order[0], "dtype", "F16"), d),
                 "but F16 shape"});
  out.push_back({"negative_shape", assemble(with_field(h, order[0], "shape", QJsonArray{-1, 8}), d),
                 "shape dimension -1 is negative"});
  out.push_back(
      {"absurd_size",
       assemble(with_field(h, order[0], "shape", QJsonArray{qint64{1} << 32, qint64{1} << 32, 16}),
                d),
       "overflows"});
  out.push_back({"fractional_shape", assemble(with_field(h, order[0], "shape", QJsonArray{2.5}), d),
                 "non-negative integers"});
  out.push_back({"offsets_not_integers",
                 assemble(with_field(h, order[0], "data_offsets", QJsonArray{"0", 4}), d),
                 "data_offsets must be two non-negative integers"});
  out.push_back({"offsets_reversed",
                 assemble(with_field(h, order[0], "data_offsets", QJsonArray{8, 4}), d),
                 "end before they begin"});
  {
    QJsonObject bad = h;
    bad[order[0]] = 5;
    out.push_back({"entry_not_object", assemble(bad, d), "entry must be an object"});
  }
  out.push_back({"entry_extra_key", assemble(with_field(h, order[0], "crc", 0), d),
                 "exactly the keys dtype, shape and data_offsets"});
  {
    const QString name = non_square_matrix(h);
    QJsonArray s = h[name].toObject()["shape"].toArray();
    const QString found = QString("(%1, %2)").arg(s[1].toInteger()).arg(s[0].toInteger());
    const QString expected = QString("(%1, %2)").arg(s[0].toInteger()).arg(s[1].toInteger());
    out.push_back({"shape_mismatch",
                   assemble(with_field(h, name, "shape", QJsonArray{s[1], s[0]}), d),
                   "tensor \"" + name + "\" has shape " + found +
                       " but the configuration expects " + expected});
  }
  {
    const QString last = order.last();
    QJsonObject bad = h;
    bad.remove(last);
    const qint64 begin = h[last].toObject()["data_offsets"].toArray()[0].toInteger();
    out.push_back({"missing_tensor", assemble(bad, d.left(begin)),
                   "missing tensor \"" + last + "\": the configuration expects shape"});
  }
  {
    QJsonObject bad = h;
    bad["zz.extra"] = QJsonObject{{"dtype", "F32"},
                                  {"shape", QJsonArray{1}},
                                  {"data_offsets", QJsonArray{d.size(), d.size() + 4}}};
    out.push_back({"extra_tensor", assemble(bad, d + QByteArray(4, '\0')),
                   "extra tensor \"zz.extra\" with shape (1)"});
  }
  {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = -std::numeric_limits<float>::infinity();
    QByteArray bad = d;
    std::memcpy(bad.data() + 8, &nan, 4);
    out.push_back(
        {"nan_weight", assemble(h, bad), "tensor \"" + order[0] + "\" has a NaN at element 2"});
    bad = d;
    std::memcpy(bad.data() + 4, &inf, 4);
    out.push_back({"inf_weight", assemble(h, bad),
                   "tensor \"" + order[0] + "\" has an infinity at element 1"});
  }
  {
    const Parts q = split_file(valid_f16);
    QByteArray bad = q.data;
    const quint16 half_inf = 0x7c00;
    std::memcpy(bad.data() + 6, &half_inf, 2);
    out.push_back({"f16_infinity", assemble(q.header, bad), "has an infinity at element 3"});
  }
  {
    QJsonObject bad = h;
    bad.remove("__metadata__");
    out.push_back({"missing_metadata", assemble(bad, d), "no __metadata__ in the header"});
  }
  out.push_back({"missing_config",
                 assemble(with_meta(h, "attnscope.config", QJsonValue::Undefined), d),
                 "__metadata__ has no \"attnscope.config\""});
  out.push_back({"metadata_not_string", assemble(with_meta(h, "attnscope.version", 1), d),
                 "value \"attnscope.version\" must be a string"});
  out.push_back({"newer_version", assemble(with_meta(h, "attnscope.version", "2"), d),
                 "version \"2\" is not supported"});
  out.push_back({"config_not_json", assemble(with_meta(h, "attnscope.config", "{"), d),
                 "configuration is not valid UTF-8 JSON"});
  {
    QJsonObject meta = h["__metadata__"].toObject();
    QString text = meta["attnscope.config"].toString();
    text.insert(1, "\"dim\":1000000,");
    meta["attnscope.config"] = text;
    QJsonObject bad = h;
    bad["__metadata__"] = meta;
    out.push_back(
        {"config_duplicate_key", assemble(bad, d), "duplicate key \"dim\" in the configuration"});
  }
  out.push_back({"config_unknown_key", assemble(with_config_edit(h, "bogus_key", 1), d),
                 "unknown config key 'bogus_key'"});
  out.push_back({"absurd_config", assemble(with_config_edit(h, "dim", 1'000'000'000), d),
                 "dim must be in 1..8192"});
  return out;
}

// The malformed files the CLI tests read; each is one row of the corpus.
const char* const kCommitted[] = {"truncated",   "header_past_end", "overlapping_offsets",
                                  "wrong_dtype", "shape_mismatch",  "absurd_size",
                                  "not_json"};

QByteArray read_all(const QString& path) {
  QFile f(path);
  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

bool write_all(const QString& path, const QByteArray& bytes) {
  QFile f(path);
  return f.open(QIODevice::WriteOnly | QIODevice::Truncate) && f.write(bytes) == bytes.size();
}

size_t weights_bytes() {
  return MemTracker::instance()
      .snapshot()
      .by_category[static_cast<size_t>(MemCategory::kWeights)]
      .current;
}

ModelConfig small_config() {
  ModelConfig c;
  c.family = Family::kDense;
  c.modality = *modality_parse("image:4x4x3");
  c.layers = 1;
  c.dim = 8;
  c.heads = 2;
  c.seed = 11;
  Status st = config_resolve(c);
  Q_ASSERT(st.is_ok());
  return c;
}

// The smallest model that makes a valid file: the committed corpus must stay under 4 KB.
ModelConfig tiny_config() {
  ModelConfig c;
  c.family = Family::kDense;
  c.modality = *modality_parse("text:4");
  c.layers = 1;
  c.dim = 1;
  c.heads = 1;
  Status st = config_resolve(c);
  Q_ASSERT(st.is_ok());
  return c;
}

}  // namespace

class TestSafetensors : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir dir_;
  ModelConfig cfg_;
  WeightMap weights_;
  QByteArray valid_f32_, valid_f16_;

  QString path(const QString& name) const { return dir_.filePath(name); }

  QByteArray save_bytes(const ModelConfig& cfg, const WeightMap& w, DType dtype) {
    const QString p = path("scratch.safetensors");
    Status st = safetensors_save(p.toStdString(), cfg, w, dtype);
    if (!st.is_ok()) qWarning("%s", st.message().c_str());
    return read_all(p);
  }

 private slots:
  void initTestCase() {
    QVERIFY(dir_.isValid());
    cfg_ = small_config();
    weights_ = model_init_weights(cfg_, {.seed = 5, .zero_logits = false});
    valid_f32_ = save_bytes(cfg_, weights_, DType::kF32);
    valid_f16_ = save_bytes(cfg_, weights_, DType::kF16);
    QVERIFY(!valid_f32_.isEmpty());
    QVERIFY(!valid_f16_.isEmpty());
  }

  void layoutIsCanonical() {
    quint64 len = 0;
    std::memcpy(&len, valid_f32_.constData(), 8);
    QCOMPARE(len % 8, quint64{0});  // header padded with spaces: the data starts 8-aligned
    const Parts p = split_file(valid_f32_);
    const QJsonObject meta = p.header["__metadata__"].toObject();
    QCOMPARE(meta["format"].toString(), QString("attnscope"));
    QCOMPARE(meta["attnscope.version"].toString(), QString("1"));
    QCOMPARE(meta["attnscope.config"].toString().toStdString(), config_to_json(cfg_));
    // Tensors are laid out contiguously in sorted name order.
    QStringList order = by_offset(p.header);
    QStringList sorted = order;
    std::sort(sorted.begin(), sorted.end());
    QCOMPARE(order, sorted);
    QCOMPARE(static_cast<size_t>(order.size()), weights_.size());
    qint64 pos = 0;
    for (const QString& name : order) {
      QJsonArray off = p.header[name].toObject()["data_offsets"].toArray();
      QCOMPARE(off[0].toInteger(), pos);
      pos = off[1].toInteger();
      QCOMPARE(p.header[name].toObject()["dtype"].toString(), QString("F32"));
    }
    QCOMPARE(pos, p.data.size());
  }

  // The format's rules agree with the format's own library, file by file: reference.tsv holds
  // the verdict of the Python safetensors package (reference_verdicts.py; the CTest
  // test_safetensors_reference re-derives it where that package is installed) on one file per
  // rule, on tests/data/malformed and on the bundled models. Where the reference refuses, the
  // model reader refuses too; where it accepts, the model reader either loads the file or
  // names one of Attnscope's own rules (FORMAT.md section 5, items 7-11), never a format rule.
  void formatAgreesWithReference() {
    const QString root = QStringLiteral(ATTNSCOPE_TEST_DATA) + "/../..";
    QFile tsv(QStringLiteral(ATTNSCOPE_TEST_DATA) + "/safetensors/reference.tsv");
    QVERIFY(tsv.open(QIODevice::ReadOnly | QIODevice::Text));
    QSet<QString> listed;
    int accepted = 0, refused = 0;
    while (!tsv.atEnd()) {
      const QString line = QString::fromUtf8(tsv.readLine()).trimmed();
      if (line.isEmpty() || line.startsWith('#')) continue;
      const QStringList cols = line.split('\t');
      QVERIFY2(cols.size() >= 2, qPrintable(line));
      const QString file = root + "/" + cols[0];
      const bool reference_accepts = cols[1] == "accept";
      listed.insert(cols[0]);
      (reference_accepts ? accepted : refused)++;
      const Status ours = safetensors_check_format(file.toStdString());
      QVERIFY2(ours.code() != StatusCode::kNotFound, qPrintable(cols[0]));
      QVERIFY2(ours.is_ok() == reference_accepts,
               qPrintable(cols[0] + ": the reference says " + cols[1] + ", we say " +
                          QString::fromStdString(ours.is_ok() ? "accept" : ours.message())));
      auto model = safetensors_load(file.toStdString());
      if (!reference_accepts) QVERIFY2(!model.has_value(), qPrintable(cols[0]));
      if (cols[0].contains("written_by_attnscope") || cols[0].startsWith("assets/models/"))
        QVERIFY2(model.has_value(), model.status().message().c_str());
    }
    QVERIFY2(accepted >= 20 && refused >= 40,
             qPrintable(QString("%1 accepted, %2 refused").arg(accepted).arg(refused)));
    // Every corpus file has a recorded verdict (a new case needs reference_verdicts.py --write).
    const QDir corpus(QStringLiteral(ATTNSCOPE_TEST_DATA) + "/safetensors");
    for (const QString& name : corpus.entryList({"*.safetensors"}, QDir::Files))
      QVERIFY2(listed.contains("tests/data/safetensors/" + name), qPrintable(name));
    // Our writer's files are well-formed safetensors at every dtype.
    for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
      const QString p = path(QString("written-%1.safetensors").arg(dtype_name(d)));
      QVERIFY(safetensors_save(p.toStdString(), cfg_, weights_, d).is_ok());
      const Status st = safetensors_check_format(p.toStdString());
      QVERIFY2(st.is_ok(), st.message().c_str());
    }
  }

  // The rules the format allows and Attnscope refuses, each named.
  void attnscopeRulesBeyondTheFormat_data() {
    QTest::addColumn<QString>("file");
    QTest::addColumn<QString>("message");
    QTest::newRow("duplicate name") << "duplicate_tensor_name"
                                    << "duplicate key \"a\"";
    QTest::newRow("extra entry key") << "entry_extra_key"
                                     << "exactly the keys dtype, shape";
    QTest::newRow("I8") << "valid_other_dtype_i8"
                        << "Attnscope reads F32, F16 and BF16 only";
    QTest::newRow("null metadata") << "metadata_null"
                                   << "__metadata__ must be an object";
    QTest::newRow("no metadata") << "valid_no_metadata"
                                 << "no __metadata__";
    QTest::newRow("deep ignored key") << "nesting_127_in_ignored_key"
                                      << "nests deeper than 3";
  }

  void attnscopeRulesBeyondTheFormat() {
    QFETCH(QString, file);
    QFETCH(QString, message);
    const std::string p =
        (QStringLiteral(ATTNSCOPE_TEST_DATA) + "/safetensors/" + file + ".safetensors")
            .toStdString();
    QVERIFY(safetensors_check_format(p).is_ok());
    auto model = safetensors_load(p);
    QVERIFY(!model.has_value());
    QVERIFY2(QString::fromStdString(model.status().message()).contains(message),
             model.status().message().c_str());
  }

  void roundTripF32() {
    const QString p = path("model.safetensors");
    QVERIFY(safetensors_save(p.toStdString(), cfg_, weights_, DType::kF32).is_ok());
    auto loaded = safetensors_load(p.toStdString());
    QVERIFY2(loaded.has_value(), loaded.status().message().c_str());
    QCOMPARE(config_to_json(loaded->cfg), config_to_json(cfg_));
    QCOMPARE(loaded->file_bytes, static_cast<size_t>(QFileInfo(p).size()));
    QCOMPARE(loaded->weights.size(), weights_.size());
    for (const auto& [name, t] : weights_) {
      const Tensor& u = loaded->weights.at(name);
      QCOMPARE(u.shape(), t.shape());
      QVERIFY2(std::memcmp(u.data(), t.data(), sizeof(float) * t.numel()) == 0, name.c_str());
    }
    QCOMPARE(QDir(dir_.path()).entryList(QDir::Files | QDir::Hidden).filter("model"),
             QStringList{"model.safetensors"});  // no temporary left beside it
  }

  void roundTripEveryFamily_data() {
    QTest::addColumn<QString>("config");
    QTest::newRow("sparse") << R"({"family":"sparse","modality":"image:4x4x3","layers":2,"dim":8,
        "heads":2,"sparse":{"block":16,"pattern":"fixed","stride":16,"summary":4}})";
    QTest::newRow("reformer") << R"({"family":"reformer","modality":"text:16","layers":2,
        "dim":8,"heads":2,"lsh":{"chunk":4}})";
    QTest::newRow("perceiver-ar") << R"({"family":"perceiver-ar","modality":"audio:1000:0.016",
        "layers":1,"dim":8,"heads":2,"perceiver":{"latents":4}})";
    QTest::newRow("hourglass linear") << R"({"family":"hourglass","modality":"text:16","dim":8,
        "heads":2,"hourglass":{"hierarchy":"1@1,1@2,1@1","pool":"linear","upsample":"linear"}})";
  }

  void roundTripEveryFamily() {
    QFETCH(QString, config);
    auto cfg = config_from_json(config.toStdString());
    QVERIFY2(cfg.has_value(), cfg.status().message().c_str());
    const WeightMap w = model_init_weights(*cfg, {.seed = 9, .zero_logits = false});
    const QString p = path("family.safetensors");
    Status st = safetensors_save(p.toStdString(), *cfg, w);
    QVERIFY2(st.is_ok(), st.message().c_str());
    auto loaded = safetensors_load(p.toStdString());
    QVERIFY2(loaded.has_value(), loaded.status().message().c_str());
    QCOMPARE(config_to_json(loaded->cfg), config_to_json(*cfg));
    QCOMPARE(loaded->weights.size(), w.size());
    for (const auto& [name, t] : w)
      QVERIFY2(std::memcmp(loaded->weights.at(name).data(), t.data(), 4 * t.numel()) == 0,
               name.c_str());
  }

  void roundTripHalf_data() {
    QTest::addColumn<int>("dtype");
    QTest::addColumn<double>("rel");
    QTest::addColumn<double>("abs");
    // Round to nearest: half an ulp relative (11 significant bits for F16, 8 for BF16);
    // F16 values under 2^-14 are subnormal, whose spacing is 2^-24, so half of it absolute.
    QTest::newRow("F16") << static_cast<int>(DType::kF16) << std::ldexp(1.0, -11)
                         << std::ldexp(1.0, -25);
    QTest::newRow("BF16") << static_cast<int>(DType::kBF16) << std::ldexp(1.0, -8) << 0.0;
  }

  void roundTripHalf() {
    QFETCH(int, dtype);
    QFETCH(double, rel);
    QFETCH(double, abs);
    const QString p = path("half.safetensors");
    QVERIFY(safetensors_save(p.toStdString(), cfg_, weights_, static_cast<DType>(dtype)).is_ok());
    const Parts parts = split_file(read_all(p));
    QCOMPARE(parts.header["head.bias"].toObject()["dtype"].toString(),
             QString(dtype_name(static_cast<DType>(dtype))));
    auto loaded = safetensors_load(p.toStdString());
    QVERIFY2(loaded.has_value(), loaded.status().message().c_str());
    QCOMPARE(config_to_json(loaded->cfg), config_to_json(cfg_));
    for (const auto& [name, t] : weights_) {
      const Tensor& u = loaded->weights.at(name);
      QCOMPARE(u.shape(), t.shape());
      for (int64_t i = 0; i < t.numel(); ++i) {
        const double a = t.data()[i], b = u.data()[i];
        if (std::fabs(a - b) > std::max(std::fabs(a) * rel, abs))
          QFAIL(qPrintable(QString("%1[%2]: %3 came back as %4")
                               .arg(name.c_str())
                               .arg(i)
                               .arg(a, 0, 'g', 9)
                               .arg(b, 0, 'g', 9)));
      }
    }
  }

  // Exact conversions, ties to even included, checked value by value.
  void halfRounding_data() {
    QTest::addColumn<int>("dtype");
    QTest::addColumn<float>("in");
    QTest::addColumn<float>("out");
    const int f16 = static_cast<int>(DType::kF16), bf16 = static_cast<int>(DType::kBF16);
    QTest::newRow("f16 one") << f16 << 1.0f << 1.0f;
    QTest::newRow("f16 tie down to even") << f16 << 1.0f + 0x1p-11f << 1.0f;
    QTest::newRow("f16 tie up to even") << f16 << 1.0f + 3 * 0x1p-11f << 1.0f + 0x1p-9f;
    QTest::newRow("f16 largest") << f16 << 65504.0f << 65504.0f;
    QTest::newRow("f16 just under overflow") << f16 << 65519.0f << 65504.0f;
    QTest::newRow("f16 smallest subnormal") << f16 << 0x1p-24f << 0x1p-24f;
    QTest::newRow("f16 half of smallest: tie to zero") << f16 << 0x1p-25f << 0.0f;
    QTest::newRow("f16 above half of smallest") << f16 << 0x1.8p-25f << 0x1p-24f;
    QTest::newRow("f16 subnormal tie up") << f16 << 0x1.cp-23f << 0x1p-22f;
    QTest::newRow("f16 negative") << f16 << -2.5f << -2.5f;
    QTest::newRow("f16 smallest normal") << f16 << 0x1p-14f << 0x1p-14f;
    QTest::newRow("bf16 tie down to even") << bf16 << 1.0f + 0x1p-8f << 1.0f;
    QTest::newRow("bf16 tie up to even") << bf16 << 1.0f + 3 * 0x1p-8f << 1.0f + 0x1p-6f;
    QTest::newRow("bf16 negative") << bf16 << -2.5f << -2.5f;
  }

  void halfRounding() {
    QFETCH(int, dtype);
    QFETCH(float, in);
    QFETCH(float, out);
    WeightMap w = model_init_weights(cfg_, {.seed = 1, .zero_logits = false});
    Tensor probe = Tensor::zeros(w.at("head.bias").shape(), MemCategory::kWeights);
    probe.data()[3] = in;
    w["head.bias"] = probe;
    const QString p = path("rounding.safetensors");
    Status st = safetensors_save(p.toStdString(), cfg_, w, static_cast<DType>(dtype));
    QVERIFY2(st.is_ok(), st.message().c_str());
    auto loaded = safetensors_load(p.toStdString());
    QVERIFY2(loaded.has_value(), loaded.status().message().c_str());
    QCOMPARE(std::bit_cast<uint32_t>(loaded->weights.at("head.bias").data()[3]),
             std::bit_cast<uint32_t>(out));
  }

  void saveRefusesWhatCannotLoad_data() {
    QTest::addColumn<int>("dtype");
    QTest::addColumn<float>("value");
    QTest::addColumn<QString>("expect");
    QTest::newRow("NaN") << static_cast<int>(DType::kF32) << std::nanf("")
                         << "tensor \"head.bias\" has a NaN at element 0";
    QTest::newRow("infinity") << static_cast<int>(DType::kBF16)
                              << std::numeric_limits<float>::infinity() << "has an infinity";
    QTest::newRow("over F16 range")
        << static_cast<int>(DType::kF16) << 70000.0f << "does not fit F16; save as F32 or BF16";
  }

  void saveRefusesWhatCannotLoad() {
    QFETCH(int, dtype);
    QFETCH(float, value);
    QFETCH(QString, expect);
    const QString p = path("keep.safetensors");
    QVERIFY(safetensors_save(p.toStdString(), cfg_, weights_).is_ok());
    const QByteArray before = read_all(p);
    WeightMap w = model_init_weights(cfg_, {.seed = 2, .zero_logits = false});
    Tensor bad = Tensor::zeros(w.at("head.bias").shape(), MemCategory::kWeights);
    bad.data()[0] = value;
    w["head.bias"] = bad;
    Status st = safetensors_save(p.toStdString(), cfg_, w, static_cast<DType>(dtype));
    QCOMPARE(st.code(), StatusCode::kInvalidArgument);
    QVERIFY2(QString::fromStdString(st.message()).contains(expect), st.message().c_str());
    QCOMPARE(read_all(p), before);  // the old file is untouched
    QCOMPARE(QDir(dir_.path()).entryList(QDir::Files | QDir::Hidden).filter("keep"),
             QStringList{"keep.safetensors"});
  }

  void saveRefusesWeightsThatDisagreeWithConfig() {
    WeightMap w = weights_;
    w.erase("head.weight");
    const QString p = path("incomplete.safetensors");
    Status st = safetensors_save(p.toStdString(), cfg_, w);
    QCOMPARE(st.code(), StatusCode::kInvalidArgument);
    QVERIFY2(QString::fromStdString(st.message()).contains("head.weight"), st.message().c_str());
    QVERIFY(!QFile::exists(p));
    QCOMPARE(QDir(dir_.path()).entryList(QDir::Files | QDir::Hidden).filter("incomplete"),
             QStringList{});
  }

  void saveReplacesAtomically() {
    const QString p = path("replace.safetensors");
    QVERIFY(safetensors_save(p.toStdString(), cfg_, weights_, DType::kBF16).is_ok());
    QVERIFY(safetensors_save(p.toStdString(), cfg_, weights_, DType::kF32).is_ok());
    QCOMPARE(read_all(p), valid_f32_);
    QCOMPARE(QDir(dir_.path()).entryList(QDir::Files | QDir::Hidden).filter("replace"),
             QStringList{"replace.safetensors"});
  }

  void saveIntoMissingFolder() {
    Status st = safetensors_save(path("no/such/dir/m.safetensors").toStdString(), cfg_, weights_);
    QCOMPARE(st.code(), StatusCode::kNotFound);
    QVERIFY2(QString::fromStdString(st.message()).contains("cannot create a temporary file"),
             st.message().c_str());
  }

  // F32 tensors borrow the mapping and F16 ones are converted copies: either way the ledger
  // counts every weight byte under kWeights while the model lives, and none after.
  void memoryIsCounted_data() {
    QTest::addColumn<int>("dtype");
    QTest::newRow("F32 mapped") << static_cast<int>(DType::kF32);
    QTest::newRow("F16 converted") << static_cast<int>(DType::kF16);
  }

  void memoryIsCounted() {
    QFETCH(int, dtype);
    const QString p = path("counted.safetensors");
    QVERIFY(safetensors_save(p.toStdString(), cfg_, weights_, static_cast<DType>(dtype)).is_ok());
    size_t expected = 0;
    for (const auto& [name, t] : weights_) expected += sizeof(float) * t.numel();
    const size_t before = weights_bytes();
    {
      auto loaded = safetensors_load(p.toStdString());
      QVERIFY(loaded.has_value());
      QCOMPARE(weights_bytes() - before, expected);
      WeightMap kept = loaded->weights;  // tensors keep the mapping alive on their own
      loaded = Status(StatusCode::kCancelled, "dropped");
      QCOMPARE(weights_bytes() - before, expected);
      QCOMPARE(kept.at("head.bias").data()[7], weights_.at("head.bias").data()[7]);
    }
    QCOMPARE(weights_bytes(), before);
  }

  // Writing into a loaded tensor (as training does) changes memory, never the file.
  void loadedWeightsAreWritable() {
    const QString p = path("writable.safetensors");
    QVERIFY(safetensors_save(p.toStdString(), cfg_, weights_).is_ok());
    {
      auto loaded = safetensors_load(p.toStdString());
      QVERIFY(loaded.has_value());
      Tensor t = loaded->weights.at("embed.token");
      std::fill(t.data(), t.data() + t.numel(), 42.0f);
    }
    QCOMPARE(read_all(p), valid_f32_);
  }

  // A foreign writer may not pad the header: unaligned F32 data is copied, not borrowed.
  void unalignedDataIsCopied() {
    const Parts parts = split_file(valid_f32_);
    const QByteArray header = QJsonDocument(parts.header).toJson(QJsonDocument::Compact);
    const QString p = path("unaligned.safetensors");
    QVERIFY(write_all(p, assemble(header, parts.data, 2)));
    auto loaded = safetensors_load(p.toStdString());
    QVERIFY2(loaded.has_value(), loaded.status().message().c_str());
    for (const auto& [name, t] : weights_) {
      QCOMPARE(reinterpret_cast<uintptr_t>(loaded->weights.at(name).data()) % alignof(float),
               uintptr_t{0});
      QVERIFY(std::memcmp(loaded->weights.at(name).data(), t.data(), 4 * t.numel()) == 0);
    }
  }

  void missingFileIsNotFound() {
    const std::string p = path("absent.safetensors").toStdString();
    auto loaded = safetensors_load(p);
    QCOMPARE(loaded.status().code(), StatusCode::kNotFound);
    QCOMPARE(loaded.status().message(), p + ": no such model file");
  }

  void folderIsRefused() {
    auto loaded = safetensors_load(dir_.path().toStdString());
    QCOMPARE(loaded.status().code(), StatusCode::kInvalidArgument);
    QVERIFY(QString::fromStdString(loaded.status().message()).endsWith("not a regular file"));
  }

  void malformedIsRefused_data() {
    QTest::addColumn<QByteArray>("bytes");
    QTest::addColumn<QString>("expect");
    for (const Malformed& m : malformed_corpus(valid_f32_, valid_f16_))
      QTest::newRow(m.tag.constData()) << m.bytes << m.expect;
  }

  void malformedIsRefused() {
    QFETCH(QByteArray, bytes);
    QFETCH(QString, expect);
    const QString p = path(QString("bad-%1.safetensors").arg(QTest::currentDataTag()));
    QVERIFY(write_all(p, bytes));
    auto loaded = safetensors_load(p.toStdString());
    QVERIFY2(!loaded.has_value(), "a malformed file was accepted");
    QCOMPARE(loaded.status().code(), StatusCode::kInvalidArgument);
    const QString msg = QString::fromStdString(loaded.status().message());
    QVERIFY2(msg.startsWith(p + ": "), qPrintable(msg));  // names the file
    QVERIFY2(msg.contains(expect), qPrintable("got: " + msg + "\nwanted: " + expect));
  }

  // Spaces are the format's padding: a header padded with them loads as the plain file does.
  void spacePaddedHeaderLoads() {
    const Parts parts = split_file(valid_f32_);
    const qsizetype header_end = valid_f32_.size() - parts.data.size();
    const QByteArray header = valid_f32_.mid(8, header_end - 8) + QByteArray(7, ' ');
    const QString p = path("space-padded.safetensors");
    QVERIFY(write_all(p, assemble(header, parts.data)));
    auto loaded = safetensors_load(p.toStdString());
    QVERIFY2(loaded.has_value(), qPrintable(QString::fromStdString(loaded.status().message())));
    auto plain_path = path("plain.safetensors");
    QVERIFY(write_all(plain_path, valid_f32_));
    auto plain = safetensors_load(plain_path.toStdString());
    QVERIFY(plain.has_value());
    QCOMPARE(loaded->weights.size(), plain->weights.size());
    for (const auto& [name, t] : plain->weights) {
      const Tensor& u = loaded->weights.at(name);
      QCOMPARE(u.numel(), t.numel());
      QVERIFY(std::equal(t.data(), t.data() + t.numel(), u.data()));
    }
  }

  // Hostile input: random byte edits and cuts, aimed at the header half of the time. Every
  // result is a load or an invalid-argument refusal; run under ASan to catch more than crashes.
  void randomDamageIsLoadedOrRefused() {
    std::mt19937 rng(1234);
    quint64 header_len = 0;
    std::memcpy(&header_len, valid_f32_.constData(), 8);
    const auto header_end = static_cast<qsizetype>(8 + header_len);
    const QString p = path("damaged.safetensors");
    int loaded_count = 0, refused_count = 0;
    for (int round = 0; round < 2000; ++round) {
      QByteArray b = valid_f32_;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        const qsizetype at = static_cast<qsizetype>(rng() % (rng() % 2 ? header_end : b.size()));
        b[at] = static_cast<char>(rng());
      }
      if (rng() % 8 == 0) b.truncate(static_cast<qsizetype>(rng() % b.size()));
      QVERIFY(write_all(p, b));
      auto loaded = safetensors_load(p.toStdString());
      if (loaded.has_value()) {
        ++loaded_count;
      } else {
        ++refused_count;
        QCOMPARE(loaded.status().code(), StatusCode::kInvalidArgument);
      }
    }
    QVERIFY(loaded_count > 0 && refused_count > 0);  // both paths were exercised
  }

  // Regenerates tests/data/malformed/ from the tiny F16 model (run on purpose, not in CI).
  void writeCommittedCorpus() {
    if (!qEnvironmentVariableIsSet("ATTNSCOPE_WRITE_MALFORMED"))
      QSKIP("set ATTNSCOPE_WRITE_MALFORMED=1 to regenerate tests/data/malformed/");
    const ModelConfig tiny = tiny_config();
    const WeightMap w = model_init_weights(tiny, {.seed = 3, .zero_logits = false});
    const QByteArray valid = save_bytes(tiny, w, DType::kF16);
    const QString out = QString(ATTNSCOPE_TEST_DATA) + "/malformed";
    QVERIFY(QDir().mkpath(out));
    for (const char* name : kCommitted)
      for (const Malformed& m : malformed_corpus(valid, valid))
        if (m.tag == name) {
          QVERIFY(m.bytes.size() < 4096);
          QVERIFY(write_all(out + "/" + name + ".safetensors", m.bytes));
        }
  }

  void committedCorpusIsRefused_data() {
    QTest::addColumn<QString>("name");
    QTest::addColumn<QString>("expect");
    const ModelConfig tiny = tiny_config();
    const WeightMap w = model_init_weights(tiny, {.seed = 3, .zero_logits = false});
    const auto corpus =
        malformed_corpus(save_bytes(tiny, w, DType::kF16), save_bytes(tiny, w, DType::kF16));
    for (const char* name : kCommitted)
      for (const Malformed& m : corpus)
        if (m.tag == name) QTest::newRow(name) << QString(name) << m.expect;
  }

  void committedCorpusIsRefused() {
    QFETCH(QString, name);
    QFETCH(QString, expect);
    const QString p = QString(ATTNSCOPE_TEST_DATA) + "/malformed/" + name + ".safetensors";
    QVERIFY2(QFile::exists(p), qPrintable(p + " is missing: run with ATTNSCOPE_WRITE_MALFORMED=1"));
    QVERIFY(QFileInfo(p).size() < 4096);
    auto loaded = safetensors_load(p.toStdString());
    QCOMPARE(loaded.status().code(), StatusCode::kInvalidArgument);
    // The message starts with the path, whose file name already says what is wrong: look at
    // the rest, so the file name cannot satisfy the check on its own.
    const QString msg = QString::fromStdString(loaded.status().message()).remove(p);
    QVERIFY2(msg.contains(expect), qPrintable("got: " + msg + "\nwanted: " + expect));
  }
};

QTEST_APPLESS_MAIN(TestSafetensors)
#include "test_safetensors.moc"
