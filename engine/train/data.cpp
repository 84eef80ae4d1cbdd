// Training data: folders or files of images (through the caller's decoder), WAV audio and
// text cut into byte sequences of exactly the model's length, with a deterministic held-out
// split by source file.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "attnscope/audio.h"
#include "attnscope/train.h"

namespace attnscope {

namespace {

namespace fs = std::filesystem;

// A source file and the examples cut from it (an image is one; audio and text are windows).
struct Unit {
  std::string name;  // path relative to the root (the file name when the root is a file)
  std::vector<std::vector<uint8_t>> examples;
  std::vector<std::string> names;  // name, or name@offset for windows
};

// What was skipped while loading, for describe and for the "nothing usable" message.
struct Skips {
  int64_t unreadable = 0, too_short = 0;
  std::string first_unreadable, first_short;  // "path: why"
};

std::string lower_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

bool extension_matches(const fs::path& p, ModalityKind kind) {
  const std::string ext = lower_extension(p);
  switch (kind) {
    case ModalityKind::kImage:
      return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
    case ModalityKind::kAudio:
      return ext == ".wav";
    case ModalityKind::kText:
      return true;
  }
  return false;
}

const char* kind_files(ModalityKind kind) {
  switch (kind) {
    case ModalityKind::kImage:
      return ".png/.jpg/.jpeg files";
    case ModalityKind::kAudio:
      return ".wav files";
    case ModalityKind::kText:
      return "files";
  }
  return "files";
}

// The files of path (a file, or every regular file below a folder with a matching extension),
// as (absolute path, name relative to the root) in sorted order of the relative name.
Expected<std::vector<std::pair<std::string, std::string>>> list_files(const std::string& path,
                                                                      ModalityKind kind) {
  std::error_code ec;
  const fs::path root(path);
  if (!fs::exists(root, ec)) return not_found(path + ": no such file or folder");
  std::vector<std::pair<std::string, std::string>> files;
  if (!fs::is_directory(root, ec)) {
    files.emplace_back(path, root.filename().string());
    return files;
  }
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
  if (ec) return invalid_argument(path + ": cannot list the folder (" + ec.message() + ")");
  for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
    if (ec) return invalid_argument(path + ": cannot list the folder (" + ec.message() + ")");
    std::error_code e2;
    if (!it->is_regular_file(e2) || !extension_matches(it->path(), kind)) continue;
    files.emplace_back(it->path().string(), it->path().lexically_relative(root).generic_string());
  }
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  return files;
}

Expected<std::vector<uint8_t>> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_argument(path + ": cannot open");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  if (in.bad()) return invalid_argument(path + ": read error");
  return bytes;
}

// Cuts tokens into non-overlapping windows of n (the remainder is dropped).
void cut_windows(const std::vector<uint8_t>& tokens, int64_t n, Unit& u) {
  for (int64_t off = 0; off + n <= static_cast<int64_t>(tokens.size()); off += n) {
    u.examples.emplace_back(tokens.begin() + off, tokens.begin() + off + n);
    u.names.push_back(u.name + "@" + std::to_string(off));
  }
}

// 64-bit FNV-1a of the name, mixed with the seed through splitmix64's finaliser.
uint64_t split_key(const std::string& name, uint64_t seed) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  uint64_t z = h ^ (seed + 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Which units are held out: units in order of split_key are taken while they fit in the
// target (heldout_share of all examples, at least 1 when >= 2 exist); if none fits, the
// smallest unit that leaves training data. Returns the number of examples held out.
int64_t choose_heldout(const std::vector<Unit>& units, const DataOptions& opt,
                       std::vector<bool>& held) {
  int64_t total = 0;
  for (const Unit& u : units) total += static_cast<int64_t>(u.examples.size());
  held.assign(units.size(), false);
  if (total < 2 || opt.heldout_share <= 0) return 0;
  const int64_t target = std::clamp<int64_t>(
      std::llround(opt.heldout_share * static_cast<double>(total)), 1, total - 1);
  std::vector<size_t> order(units.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::vector<uint64_t> key(units.size());
  for (size_t i = 0; i < units.size(); ++i) key[i] = split_key(units[i].name, opt.split_seed);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return key[a] != key[b] ? key[a] < key[b] : units[a].name < units[b].name;
  });
  int64_t n = 0;
  for (size_t i : order) {
    const auto size = static_cast<int64_t>(units[i].examples.size());
    if (size == 0 || n + size > target) continue;
    held[i] = true;
    n += size;
    if (n == target) break;
  }
  if (n > 0) return n;
  size_t best = units.size();
  for (size_t i : order) {
    const auto size = static_cast<int64_t>(units[i].examples.size());
    if (size > 0 && size < total &&
        (best == units.size() || size < static_cast<int64_t>(units[best].examples.size())))
      best = i;
  }
  if (best == units.size()) return 0;
  held[best] = true;
  return static_cast<int64_t>(units[best].examples.size());
}

std::string plural(int64_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string format_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

}  // namespace

Expected<Dataset> dataset_load(const std::string& path, const Modality& modality,
                               const DataOptions& opt) {
  const int64_t n = modality.seq_len();
  if (n <= 0)
    return invalid_argument("the modality " + modality.describe() +
                            " has no positions; data cannot be cut to its length");
  if (opt.heldout_share < 0 || opt.heldout_share >= 1)
    return invalid_argument("heldout_share must be in [0, 1), not " +
                            std::to_string(opt.heldout_share));
  if (modality.kind == ModalityKind::kImage && !opt.image_decoder)
    return unsupported(
        path +
        ": image data needs an image decoder (DataOptions::image_decoder); the engine reads no "
        "PNG/JPEG itself: attnscope-cli train supplies Qt's");
  auto files = list_files(path, modality.kind);
  if (!files) return files.status();

  // ---- load every file into units ----
  std::vector<Unit> units;
  Skips skips;
  std::vector<int> rates_seen;  // source rates that were resampled (audio)
  for (const auto& [file, name] : *files) {
    Unit u;
    u.name = name;
    switch (modality.kind) {
      case ModalityKind::kImage: {
        auto tokens = opt.image_decoder(file, modality, opt);
        if (tokens && static_cast<int64_t>(tokens->size()) != n)
          tokens = Status(internal_error(file + ": the image decoder returned " +
                                         std::to_string(tokens->size()) + " bytes, not " +
                                         std::to_string(n) + " (" + modality.describe() + ")"));
        if (!tokens) {
          if (skips.unreadable++ == 0) skips.first_unreadable = tokens.status().message();
          continue;
        }
        u.examples.push_back(std::move(*tokens));
        u.names.push_back(name);
        break;
      }
      case ModalityKind::kAudio: {
        auto clip = audio_wav_read(file);
        if (!clip) {
          if (skips.unreadable++ == 0) skips.first_unreadable = clip.status().message();
          continue;
        }
        std::vector<float> samples = std::move(clip->samples);
        if (clip->rate != modality.rate) {
          samples = audio_resample_linear(samples, clip->rate, modality.rate);
          if (std::find(rates_seen.begin(), rates_seen.end(), clip->rate) == rates_seen.end())
            rates_seen.push_back(clip->rate);
        }
        if (static_cast<int64_t>(samples.size()) < n) {
          if (skips.too_short++ == 0)
            skips.first_short = file + ": " + std::to_string(samples.size()) + " samples at " +
                                std::to_string(modality.rate) + " Hz";
          continue;
        }
        cut_windows(audio_mulaw_encode(samples), n, u);
        break;
      }
      case ModalityKind::kText: {
        auto bytes = read_all(file);
        if (!bytes) {
          if (skips.unreadable++ == 0) skips.first_unreadable = bytes.status().message();
          continue;
        }
        if (static_cast<int64_t>(bytes->size()) < n) {
          if (skips.too_short++ == 0)
            skips.first_short = file + ": " + std::to_string(bytes->size()) + " bytes";
          continue;
        }
        cut_windows(*bytes, n, u);
        break;
      }
    }
    units.push_back(std::move(u));
  }

  const char* unit_word = modality.kind == ModalityKind::kImage   ? "images"
                          : modality.kind == ModalityKind::kAudio ? "clips"
                                                                  : "windows";
  const std::string window =
      modality.kind == ModalityKind::kAudio
          ? " of " + std::to_string(n) + " samples (" + format_seconds(modality.seconds) +
                " s at " + std::to_string(modality.rate) + " Hz)"
      : modality.kind == ModalityKind::kText ? " of " + std::to_string(n) + " bytes"
                                             : "";
  if (units.empty()) {
    std::string why;
    if (files->empty()) {
      why = "no " + std::string(kind_files(modality.kind)) + " found";
    } else {
      if (skips.unreadable > 0)
        why = plural(skips.unreadable, "file", "files") +
              " unreadable (first: " + skips.first_unreadable + ")";
      if (skips.too_short > 0)
        why += (why.empty() ? "" : "; ") + plural(skips.too_short, "file", "files") +
               " shorter than one " + (modality.kind == ModalityKind::kAudio ? "clip" : "window") +
               window + " (first: " + skips.first_short + ")";
    }
    return invalid_argument(path + ": nothing usable for " + modality.describe() + ": " + why);
  }

  // ---- split ----
  Dataset d;
  std::vector<bool> held;
  int64_t n_held = 0, held_files = 0;
  std::string split_note;
  if (units.size() == 1 && units[0].examples.size() >= 2 && opt.heldout_share > 0) {
    // One source file: its last windows are held out (a contiguous tail, so no window of
    // the training part overlaps one held out).
    Unit& u = units[0];
    const auto total = static_cast<int64_t>(u.examples.size());
    n_held = std::clamp<int64_t>(std::llround(opt.heldout_share * static_cast<double>(total)), 1,
                                 total - 1);
    const auto cut = static_cast<size_t>(total - n_held);
    for (size_t i = 0; i < u.examples.size(); ++i) {
      auto& ex = i < cut ? d.train : d.heldout;
      auto& nm = i < cut ? d.train_names : d.heldout_names;
      ex.push_back(std::move(u.examples[i]));
      nm.push_back(std::move(u.names[i]));
    }
    split_note = " (the last " + plural(n_held, unit_word, unit_word) + " of the one file)";
  } else {
    n_held = choose_heldout(units, opt, held);
    for (size_t i = 0; i < units.size(); ++i) {
      held_files += held[i] ? 1 : 0;
      auto& ex = held[i] ? d.heldout : d.train;
      auto& nm = held[i] ? d.heldout_names : d.train_names;
      for (size_t k = 0; k < units[i].examples.size(); ++k) {
        ex.push_back(std::move(units[i].examples[k]));
        nm.push_back(std::move(units[i].names[k]));
      }
    }
    if (modality.kind != ModalityKind::kImage && n_held > 0)
      split_note = " (" + plural(held_files, "file", "files") + ")";
  }

  // ---- describe: "412 images from DIR; 22 held out; 3 unreadable skipped" ----
  const int64_t total = static_cast<int64_t>(d.train.size() + d.heldout.size());
  std::string s = std::to_string(total) + " " + unit_word + window + " from ";
  if (modality.kind != ModalityKind::kImage)
    s += plural(static_cast<int64_t>(units.size()), "file", "files") + " in ";
  s += path + "; " + std::to_string(n_held) + " held out" + split_note;
  if (skips.unreadable > 0) s += "; " + std::to_string(skips.unreadable) + " unreadable skipped";
  if (skips.too_short > 0)
    s += "; " + std::to_string(skips.too_short) + " shorter than one " +
         (modality.kind == ModalityKind::kAudio ? "clip" : "window") + " skipped";
  if (!rates_seen.empty()) {
    std::sort(rates_seen.begin(), rates_seen.end());
    s += "; resampled (linear) from";
    for (int r : rates_seen) s += " " + std::to_string(r);
    s += " Hz";
  }
  d.describe = std::move(s);
  return d;
}

}  // namespace attnscope
