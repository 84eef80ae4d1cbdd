// AtomicFileSet: committed files hold exactly their bytes, uncommitted or failed ones leave
// nothing behind, and a target is replaced only by commit().
#include <sys/stat.h>

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "attnscope/atomic_file.h"

using namespace attnscope;

namespace {

QByteArray read_all(const QString& path) {
  QFile f(path);
  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

QByteArray as_bytes(const std::vector<uint8_t>& v) {
  return QByteArray(reinterpret_cast<const char*>(v.data()), static_cast<qsizetype>(v.size()));
}

unsigned mode_of(const QString& path) {
  struct stat st {};
  return ::stat(path.toLocal8Bit().constData(), &st) == 0 ? st.st_mode & 07777 : 0u;
}

// Every entry of dir, hidden ones included: what a test leaves behind.
QStringList entries(const QTemporaryDir& dir) {
  return QDir(dir.path())
      .entryList(QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot, QDir::Name);
}

}  // namespace

class TestAtomicFile : public QObject {
  Q_OBJECT

 private slots:
  void committedFilesHoldTheirBytes() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    std::vector<uint8_t> a(100000);
    for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i * 7 + 3);
    const std::vector<uint8_t> b = {'h', 'i', 0, '\n'};
    {
      AtomicFileSet set;
      QVERIFY(set.add(dir.filePath("a.bin").toStdString(), a).is_ok());
      QVERIFY(set.add(dir.filePath("b.bin").toStdString(), b).is_ok());
      QVERIFY(set.add(dir.filePath("empty.bin").toStdString(), {}).is_ok());
      QVERIFY(!QFile::exists(dir.filePath("a.bin")));  // nothing in place before commit()
      Status st = set.commit();
      QVERIFY2(st.is_ok(), st.message().c_str());
    }
    QCOMPARE(entries(dir), (QStringList{"a.bin", "b.bin", "empty.bin"}));
    QCOMPARE(read_all(dir.filePath("a.bin")), as_bytes(a));
    QCOMPARE(read_all(dir.filePath("b.bin")), as_bytes(b));
    const mode_t mask = ::umask(0);  // the default set gives the mode open() would
    ::umask(mask);
    QCOMPARE(mode_of(dir.filePath("b.bin")), static_cast<unsigned>(0666 & ~mask));
    QCOMPARE(QFileInfo(dir.filePath("empty.bin")).size(), qint64(0));
  }

  void streamedFileIsTheConcatenation() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string path = dir.filePath("s.bin").toStdString();
    AtomicFileSet set;
    Status st = set.add_streamed(path, [](const FileAppender& append) {
      ATTN_RETURN_IF_ERROR(append("abc", 3));
      ATTN_RETURN_IF_ERROR(append("", 0));
      return append("defg", 4);
    });
    QVERIFY2(st.is_ok(), st.message().c_str());
    QVERIFY(set.commit().is_ok());
    QCOMPARE(read_all(dir.filePath("s.bin")), QByteArray("abcdefg"));
    QCOMPARE(entries(dir), QStringList{"s.bin"});
  }

  void uncommittedSetLeavesNothing() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    {
      AtomicFileSet set;
      QVERIFY(set.add(dir.filePath("x.bin").toStdString(), {1, 2, 3}).is_ok());
      QVERIFY(set.add(dir.filePath("y.bin").toStdString(), {4}).is_ok());
      QCOMPARE(entries(dir).size(), 2);  // the two temporary files, hidden
      for (const QString& name : entries(dir)) QVERIFY(name.startsWith('.'));
    }
    QCOMPARE(entries(dir), QStringList{});
  }

  void addIntoMissingFolderFailsAndLeavesNothing() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString missing = dir.filePath("no/such/folder");
    AtomicFileSet set;
    QVERIFY(set.add(dir.filePath("ok.bin").toStdString(), {9}).is_ok());
    Status st = set.add((missing + "/x.bin").toStdString(), {1, 2, 3});
    QCOMPARE(st.code(), StatusCode::kNotFound);
    QVERIFY2(QString::fromStdString(st.message()).contains(missing), st.message().c_str());
    QVERIFY(QString::fromStdString(st.message()).contains("cannot create a temporary file"));
    QCOMPARE(atomic_write_file((missing + "/y.bin").toStdString(), {1}).code(),
             StatusCode::kNotFound);
    QCOMPARE(entries(dir).size(), 1);  // only the temporary file of ok.bin
  }

  void failingFillLeavesNothing() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string path = dir.filePath("f.bin").toStdString();
    AtomicFileSet set;
    Status st = set.add_streamed(path, [](const FileAppender& append) {
      ATTN_RETURN_IF_ERROR(append("partial", 7));
      return invalid_argument("refused half way");
    });
    QCOMPARE(st.code(), StatusCode::kInvalidArgument);
    QCOMPARE(entries(dir), QStringList{});
    st = set.add_streamed(
        path, [](const FileAppender&) -> Status { throw std::runtime_error("out of luck"); });
    QCOMPARE(st.code(), StatusCode::kInternal);
    QVERIFY2(QString::fromStdString(st.message()).contains("f.bin"), st.message().c_str());
    QVERIFY(set.commit().is_ok());  // nothing left to commit
    QCOMPARE(entries(dir), QStringList{});
  }

  void existingTargetReplacedOnlyOnCommit() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = dir.filePath("t.bin");
    QVERIFY(atomic_write_file(path.toStdString(), {'o', 'l', 'd'}).is_ok());
    QCOMPARE(mode_of(path), 0644u);
    {
      AtomicFileSet set;
      QVERIFY(set.add(path.toStdString(), {'n', 'e', 'w'}).is_ok());
      QCOMPARE(read_all(path), QByteArray("old"));
    }
    QCOMPARE(read_all(path), QByteArray("old"));
    QCOMPARE(entries(dir), QStringList{"t.bin"});
    AtomicFileSet set;
    QVERIFY(set.add(path.toStdString(), {'n', 'e', 'w'}).is_ok());
    QCOMPARE(read_all(path), QByteArray("old"));
    QVERIFY(set.commit().is_ok());
    QCOMPARE(read_all(path), QByteArray("new"));
    QCOMPARE(entries(dir), QStringList{"t.bin"});
  }

  // When one rename fails, the outputs of the set already moved are removed again and no
  // temporary file stays: the set appears whole or not at all.
  void failedCommitLeavesNoneOfTheSet() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    QVERIFY(QDir(dir.path()).mkdir("blocker"));
    QFile inside(dir.filePath("blocker/in"));
    QVERIFY(inside.open(QIODevice::WriteOnly));
    inside.close();
    AtomicFileSet set;
    QVERIFY(set.add(dir.filePath("first.bin").toStdString(), {1}).is_ok());
    QVERIFY(set.add(dir.filePath("blocker").toStdString(), {2}).is_ok());  // a non-empty folder
    QVERIFY(set.add(dir.filePath("third.bin").toStdString(), {3}).is_ok());
    Status st = set.commit();
    QCOMPARE(st.code(), StatusCode::kInternal);
    QVERIFY2(QString::fromStdString(st.message()).contains("blocker"), st.message().c_str());
    QCOMPARE(entries(dir), QStringList{"blocker"});
  }
};

QTEST_APPLESS_MAIN(TestAtomicFile)
#include "test_atomic_file.moc"
