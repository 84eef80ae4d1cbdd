// attnscope-cli entry point: dispatches to a command, maps its Status to the exit code, and
// turns every failure (including exceptions such as std::bad_alloc) into one line on stderr.
#include <unistd.h>

#include <QtGlobal>
#include <csignal>
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "commands.h"

namespace {

attnscope::CancelFlag g_cancel{false};

extern "C" void on_sigint(int) {
  g_cancel.store(true);
}

// Qt's image plugins report decoding trouble as warnings on stderr; the command's own error
// line already names the file and the fault, so they are dropped to keep that one line.
void drop_qt_message(QtMsgType, const QMessageLogContext&, const QString&) {}

constexpr const char* kUsage =
    "usage: attnscope-cli COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  init       create a model file with fresh weights\n"
    "  info       show a model file: config, parameters, attention density, memory\n"
    "  convert    store a model at another precision (f16/bf16), checked on held-out data\n"
    "  generate   sample images, audio or text from a model\n"
    "  eval       bits per dim of a file under a model\n"
    "  bench      time attention kernels or generation (bench attention | generate | train)\n"
    "  train      train a model file on a folder or file of images, audio or text\n"
    "  memory     measure the memory of training steps per technique (and the seeds' figures)\n"
    "\n"
    "attnscope-cli COMMAND --help shows a command's options and defaults.\n"
    "Exit codes: 0 success, 1 runtime failure or cancelled, 2 bad usage or bad input.\n";

void print_error(const std::string& message) {
  std::string line = message;
  for (char& c : line)
    if (c == '\n' || c == '\r') c = ' ';
  std::fprintf(stderr, "attnscope-cli: error: %s\n", line.c_str());
}

int exit_code(const attnscope::Status& s) {
  switch (s.code()) {
    case attnscope::StatusCode::kOk:
      return 0;
    case attnscope::StatusCode::kInvalidArgument:
    case attnscope::StatusCode::kNotFound:
      return 2;
    case attnscope::StatusCode::kUnsupported:
    case attnscope::StatusCode::kCancelled:
    case attnscope::StatusCode::kInternal:
      return 1;
  }
  return 1;
}

int run(int argc, char** argv) {
  if (argc < 2) {
    print_error("no command given (see attnscope-cli --help)");
    return 2;
  }
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  cli::Argv rest(argv + 2, argv + argc);
  cli::Context ctx;
  ctx.cancel = &g_cancel;
  ctx.progress = ::isatty(STDERR_FILENO) != 0;
  attnscope::Status st;
  if (command == "init")
    st = cli::cmd_init(rest, ctx);
  else if (command == "info")
    st = cli::cmd_info(rest, ctx);
  else if (command == "convert")
    st = cli::cmd_convert(rest, ctx);
  else if (command == "generate")
    st = cli::cmd_generate(rest, ctx);
  else if (command == "eval")
    st = cli::cmd_eval(rest, ctx);
  else if (command == "bench")
    st = cli::cmd_bench(rest, ctx);
  else if (command == "train")
    st = cli::cmd_train(rest, ctx);
  else if (command == "memory")
    st = cli::cmd_memory(rest, ctx);
  else
    st =
        attnscope::invalid_argument("unknown command '" + command + "' (see attnscope-cli --help)");
  if (!st.is_ok()) print_error(st.message());
  return exit_code(st);
}

}  // namespace

int main(int argc, char** argv) {
  attnscope::mem_retain_freed_blocks();
  struct sigaction sa = {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  qInstallMessageHandler(drop_qt_message);
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc&) {
    print_error("out of memory");
  } catch (const std::exception& e) {
    print_error(std::string("unexpected failure: ") + e.what());
  } catch (...) {
    print_error("unexpected failure");
  }
  return 1;
}
