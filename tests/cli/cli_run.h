// Runs attnscope-cli (the binary CMake names in ATTNSCOPE_CLI) for the command-line tests and
// returns its exit code and output; a run past the timeout is killed and reported as failed.
// The sanitizer build runs the same commands several times slower, so its tests set
// ATTNSCOPE_TEST_TIME_SCALE (tests/CMakeLists.txt) and every timeout is multiplied by it.
#pragma once

#include <QByteArray>
#include <QProcess>
#include <QStringList>
#include <QtGlobal>

struct Run {
  int code = -1;
  QByteArray out, err;
};

inline Run cli(const QStringList& args, int timeout_ms = 120000) {
  bool scaled = false;
  const int scale = qEnvironmentVariableIntValue("ATTNSCOPE_TEST_TIME_SCALE", &scaled);
  if (scaled && scale > 1) timeout_ms *= scale;
  QProcess p;
  p.start(QStringLiteral(ATTNSCOPE_CLI), args);
  Run r;
  if (!p.waitForFinished(timeout_ms)) {
    p.kill();
    p.waitForFinished();
    r.err = "timed out";
    return r;
  }
  r.code = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
  r.out = p.readAllStandardOutput();
  r.err = p.readAllStandardError();
  return r;
}
