// Command-line parsing for attnscope-cli: each command states its flags once (name, value,
// help with the default), and that one table drives both parsing and --help.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "attnscope/status.h"

namespace cli {

using attnscope::Expected;
using attnscope::Status;

struct Flag {
  std::string name;   // "--layers"
  std::string value;  // "L"; empty for a switch that takes no value
  std::string help;   // one line, ending with the default where there is one
};

struct CommandSpec {
  std::string name;      // "init", "bench attention"
  std::string synopsis;  // the usage line after "attnscope-cli "
  std::string summary;   // what the command does
  std::vector<Flag> flags;
  int positional = 0;  // how many bare arguments the command takes
  std::string notes;   // extra paragraphs for --help (may be empty)
};

// The parsed arguments of one command. Parsing refuses unknown flags, repeated flags, missing
// values and extra bare arguments; every refusal is kInvalidArgument (exit code 2).
class Args {
 public:
  static Expected<Args> parse(const CommandSpec& spec, const std::vector<std::string>& argv);

  bool help() const { return help_; }
  bool has(const std::string& flag) const { return values_.count(flag) > 0; }
  const std::vector<std::string>& positional() const { return positional_; }
  std::string text(const std::string& flag, const std::string& fallback) const;
  Expected<std::string> required(const std::string& flag) const;
  // The flag's integer value in [lo, hi], or fallback when the flag is absent.
  Expected<int64_t> integer(const std::string& flag, int64_t fallback, int64_t lo,
                            int64_t hi) const;
  // As integer(), but the flag must be present.
  Expected<int64_t> required_integer(const std::string& flag, int64_t lo, int64_t hi) const;
  Expected<double> number(const std::string& flag, double fallback, double lo, double hi) const;

 private:
  bool help_ = false;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// The --help text of one command: synopsis, summary, then one line per flag.
std::string command_help(const CommandSpec& spec);

}  // namespace cli
