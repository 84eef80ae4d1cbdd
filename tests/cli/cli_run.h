// Runs attnscope-cli (the binary CMake names in ATTNSCOPE_CLI) for the command-line tests and
// returns its exit code and output; a run past the timeout is killed and reported as failed.
#pragma once

#include <QByteArray>
#include <QProcess>
#include <QStringList>

struct Run {
  int code = -1;
  QByteArray out, err;
};

inline Run cli(const QStringList& args, int timeout_ms = 120000) {
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
