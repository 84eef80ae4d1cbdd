// Flag parsing and --help text for attnscope-cli commands (see args.h).
#include "args.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace cli {

using attnscope::invalid_argument;

Expected<Args> Args::parse(const CommandSpec& spec, const std::vector<std::string>& argv) {
  Args a;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      a.help_ = true;
      continue;
    }
    if (arg.size() < 2 || arg.compare(0, 2, "--") != 0) {
      if (static_cast<int>(a.positional_.size()) >= spec.positional)
        return invalid_argument("'" + spec.name + "' does not take the argument '" + arg +
                                "' (see attnscope-cli " + spec.name + " --help)");
      a.positional_.push_back(arg);
      continue;
    }
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const Flag* flag = nullptr;
    for (const Flag& f : spec.flags)
      if (f.name == name) flag = &f;
    if (!flag)
      return invalid_argument("unknown option '" + name + "' for '" + spec.name +
                              "' (see attnscope-cli " + spec.name + " --help)");
    if (a.values_.count(name)) return invalid_argument("option '" + name + "' is given twice");
    if (flag->value.empty()) {
      if (eq != std::string::npos) return invalid_argument("option '" + name + "' takes no value");
      a.values_[name] = "";
    } else if (eq != std::string::npos) {
      a.values_[name] = arg.substr(eq + 1);
    } else {
      if (i + 1 >= argv.size())
        return invalid_argument("option '" + name + "' needs a value (" + flag->value + ")");
      a.values_[name] = argv[++i];
    }
  }
  if (!a.help_ && static_cast<int>(a.positional_.size()) < spec.positional)
    return invalid_argument("'" + spec.name + "' needs " + std::to_string(spec.positional) +
                            " argument(s): attnscope-cli " + spec.synopsis);
  return a;
}

std::string Args::text(const std::string& flag, const std::string& fallback) const {
  auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second;
}

Expected<std::string> Args::required(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return invalid_argument("missing required option " + flag);
  if (it->second.empty()) return invalid_argument("option " + flag + " has an empty value");
  return it->second;
}

Expected<int64_t> Args::integer(const std::string& flag, int64_t fallback, int64_t lo,
                                int64_t hi) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return fallback;
  const std::string& s = it->second;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno == ERANGE || v < lo || v > hi)
    return invalid_argument(flag + " must be an integer in " + std::to_string(lo) + ".." +
                            std::to_string(hi) + ", got '" + s + "'");
  return static_cast<int64_t>(v);
}

Expected<int64_t> Args::required_integer(const std::string& flag, int64_t lo, int64_t hi) const {
  if (!has(flag)) return invalid_argument("missing required option " + flag);
  return integer(flag, 0, lo, hi);
}

Expected<double> Args::number(const std::string& flag, double fallback, double lo,
                              double hi) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return fallback;
  const std::string& s = it->second;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !std::isfinite(v) || v < lo || v > hi) {
    char range[96];
    std::snprintf(range, sizeof range, "%g..%g", lo, hi);
    return invalid_argument(flag + " must be a number in " + range + ", got '" + s + "'");
  }
  return v;
}

std::string command_help(const CommandSpec& spec) {
  std::string out = "usage: attnscope-cli " + spec.synopsis + "\n\n" + spec.summary + "\n";
  if (!spec.flags.empty()) {
    out += "\noptions:\n";
    for (const Flag& f : spec.flags) {
      std::string left = "  " + f.name + (f.value.empty() ? "" : " " + f.value);
      if (left.size() < 26)
        left.resize(26, ' ');
      else
        left += "\n" + std::string(26, ' ');
      out += left + f.help + "\n";
    }
    out += "  --help                  show this help\n";
  }
  if (!spec.notes.empty()) out += "\n" + spec.notes + "\n";
  return out;
}

}  // namespace cli
