// The safetensors model file (layout and rules in engine/io/FORMAT.md): the atomic writer, the
// memory-mapping reader, and the checks that turn every malformed file into a Status.
#include "attnscope/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "attnscope/atomic_file.h"

namespace attnscope {

static_assert(std::endian::native == std::endian::little,
              "the model file stores little-endian values and is read in place: port the "
              "byte swapping before building on a big-endian machine");

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
  }
  return "?";
}

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the safetensors reference limit
constexpr int kMaxFormatNesting = 127;  // the reference's JSON parser (serde_json) stops at 128
constexpr int kMaxHeaderNesting = 3;    // root object > tensor entry > shape / data_offsets array
constexpr int kMaxConfigNesting = 2;    // root object > section (sparse, lsh, ...)
constexpr const char* kFormatVersion = "1";
constexpr const char* kMetadataKey = "__metadata__";
constexpr const char* kConfigKey = "attnscope.config";
constexpr const char* kVersionKey = "attnscope.version";

uint64_t dtype_size(DType d) {
  return d == DType::kF32 ? 4 : 2;
}

// Half and bfloat16 <-> float, rounding to nearest even. C++20 has no 16-bit float type and
// the packaged libraries that convert (Eigen, ggml) are heavy for these few lines.
float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: man * 2^-24
    float v = std::ldexp(static_cast<float>(man), -24);
    return sign ? -v : v;
  }
  uint32_t bits =
      exp == 0x1f ? (sign | 0x7f800000u | (man << 13)) : (sign | ((exp + 112) << 23) | (man << 13));
  return std::bit_cast<float>(bits);
}

uint16_t f32_to_f16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // 65520 and above round to infinity
  if (a >= 0x38800000u) {                       // normal in half: 2^-14 and above
    uint32_t h = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3ffu);
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry moves into the exponent
    return static_cast<uint16_t>(sign | h);
  }
  // Subnormal in half: the value in units of 2^-24 is m * 2^(e - 126), e <= 112.
  uint32_t e = a >> 23;
  uint32_t shift = 126 - e;
  if (shift > 24) return sign;  // below 2^-25 (or exactly it: ties to the even zero)
  uint32_t m = (a & 0x7fffffu) | 0x800000u;
  uint32_t q = m >> shift;
  uint32_t rem = m & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return static_cast<uint16_t>(sign | q);
}

float bf16_to_f32(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

uint16_t f32_to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

float stored_value(float v, DType d) {
  switch (d) {
    case DType::kF32:
      return v;
    case DType::kF16:
      return f16_to_f32(f32_to_f16(v));
    case DType::kBF16:
      return bf16_to_f32(f32_to_bf16(v));
  }
  return v;
}

// A name or text from a file, made safe to show: control and non-ASCII bytes replaced (a parser
// message can quote raw bytes) and cut to a readable length.
std::string printable(std::string_view s, size_t max_len = 80) {
  std::string out;
  for (char ch : s.substr(0, max_len)) {
    auto c = static_cast<unsigned char>(ch);
    out += (c < 0x20 || c >= 0x7f) ? '?' : ch;
  }
  if (s.size() > max_len) out += "...";
  return out;
}

std::string in_quotes(std::string_view name) {
  std::string s(1, '"');
  s += printable(name);
  s += '"';
  return s;
}

template <typename Int>
std::string shape_text(const std::vector<Int>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

// ---- reading ----

// The private mapping of a model file (never written back). F32 tensors borrow it, so it lives
// as long as they do; it counts their bytes under kWeights from the moment they are handed out.
struct Mapping {
  void* base = MAP_FAILED;
  size_t size = 0;
  size_t tracked = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (base != MAP_FAILED) munmap(base, size);
    if (tracked) MemTracker::instance().on_free(MemCategory::kWeights, tracked);
  }
};

struct FileDescriptor {
  int fd = -1;
  explicit FileDescriptor(int f) : fd(f) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

// One tensor of the header as the safetensors format defines it: any of the format's dtypes
// (bits per element: F4 is 4, F6_* 6, ...); dtype is set only for the three Attnscope reads.
struct Entry {
  std::string name;
  std::string dtype_text;
  unsigned bits = 0;
  std::optional<DType> dtype;
  std::vector<int64_t> shape;
  uint64_t numel = 0;
  uint64_t begin = 0, end = 0;
};

// Thrown by the parser callback to stop at the first fault; caught in parse_strict.
struct JsonFault {
  std::string message;
};

// Parses the header (or the configuration inside it) strictly. nlohmann's parser keeps the
// last of two equal keys; the format forbids them (a second "attnscope.config" or "dim" could
// hide behind the first), so a callback watches every object. what names the text in messages.
Expected<json> parse_strict(std::string_view text, const std::string& what, int max_nesting) {
  std::vector<std::set<std::string>> open_objects;
  int nesting = 0;
  json::parser_callback_t watch = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        [[fallthrough]];
      case json::parse_event_t::array_start:
        if (++nesting > max_nesting)
          throw JsonFault{what + " nests deeper than " + std::to_string(max_nesting) + " levels"};
        break;
      case json::parse_event_t::object_end:
        open_objects.pop_back();
        [[fallthrough]];
      case json::parse_event_t::array_end:
        --nesting;
        break;
      case json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second)
          throw JsonFault{"duplicate key " + in_quotes(key) + " in the " + what};
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), watch);
  } catch (const JsonFault& fault) {
    return invalid_argument(fault.message);
  } catch (const json::exception& e) {
    return invalid_argument(what + " is not valid UTF-8 JSON: " + printable(e.what(), 200));
  }
}

// ---- the safetensors format, as its reference library reads it ----
// The reference (huggingface/safetensors, checked against 0.8 file by file by test_safetensors
// and tests/data/safetensors/reference.tsv) accepts any of these dtypes, ignores unknown keys in
// a tensor entry, keeps the last of two equal keys and takes a null __metadata__ for none.
// Attnscope's own rules (load_file below) are stricter and come after.

// The reference's dtypes and their sizes in bits.
constexpr std::pair<std::string_view, unsigned> kFormatDTypes[] = {
    {"BOOL", 8},        {"F4", 4},      {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"U8", 8},
    {"I8", 8},          {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8},
    {"F8_E5M2FNUZ", 8}, {"I16", 16},    {"U16", 16},    {"F16", 16},    {"BF16", 16},
    {"I32", 32},        {"U32", 32},    {"F32", 32},    {"C64", 64},    {"F64", 64},
    {"I64", 64},        {"U64", 64}};

Status parse_dtype(const std::string& name, const json& v, Entry* e) {
  if (!v.is_string())
    return invalid_argument("tensor " + in_quotes(name) + ": dtype must be a string, found a " +
                            v.type_name());
  const auto& s = v.get_ref<const std::string&>();
  for (const auto& [dtype, bits] : kFormatDTypes)
    if (s == dtype) {
      e->dtype_text = s;
      e->bits = bits;
    }
  if (!e->bits)
    return invalid_argument("tensor " + in_quotes(name) + " has dtype " + in_quotes(printable(s)) +
                            ", which is not a safetensors dtype (F32, F16, BF16, I64, ...)");
  if (s == "F32") e->dtype = DType::kF32;
  if (s == "F16") e->dtype = DType::kF16;
  if (s == "BF16") e->dtype = DType::kBF16;
  return Status::ok();
}

Status parse_shape(const std::string& name, const json& v, Entry* e) {
  if (!v.is_array())
    return invalid_argument("tensor " + in_quotes(name) + ": shape must be an array of integers");
  std::vector<uint64_t> dims;
  for (const json& d : v) {
    if (d.is_number_integer() && !d.is_number_unsigned())
      return invalid_argument("tensor " + in_quotes(name) + ": shape dimension " +
                              std::to_string(d.get<int64_t>()) + " is negative");
    if (!d.is_number_unsigned())
      return invalid_argument("tensor " + in_quotes(name) +
                              ": shape must be an array of non-negative integers, found a " +
                              d.type_name());
    dims.push_back(d.get<uint64_t>());
  }
  // As the reference: the element count and then its bit count must fit in 64 bits.
  uint64_t count = 1;
  for (uint64_t d : dims) {
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (d != 0 && count > std::numeric_limits<uint64_t>::max() / d))
      return invalid_argument("tensor " + in_quotes(name) + ": shape " + shape_text(dims) +
                              " overflows: its element count does not fit in 64 bits");
    count *= d;
  }
  if (count > std::numeric_limits<uint64_t>::max() / e->bits)
    return invalid_argument("tensor " + in_quotes(name) + ": shape " + shape_text(dims) +
                            " overflows: its size in bits does not fit in 64 bits");
  for (uint64_t d : dims) e->shape.push_back(static_cast<int64_t>(d));
  e->numel = count;
  return Status::ok();
}

Status parse_offsets(const std::string& name, const json& v, Entry* e) {
  if (!v.is_array() || v.size() != 2 || !v[0].is_number_unsigned() || !v[1].is_number_unsigned())
    return invalid_argument("tensor " + in_quotes(name) +
                            ": data_offsets must be two non-negative integers [begin, end]");
  e->begin = v[0].get<uint64_t>();
  e->end = v[1].get<uint64_t>();
  std::string range = "[" + std::to_string(e->begin) + ", " + std::to_string(e->end) + "]";
  if (e->end < e->begin)
    return invalid_argument("tensor " + in_quotes(name) + ": data_offsets " + range +
                            " end before they begin");
  const uint64_t bits = e->numel * e->bits;
  if (bits % 8 != 0)
    return invalid_argument("tensor " + in_quotes(name) + ": " + std::to_string(e->numel) + " " +
                            e->dtype_text + " elements are " + std::to_string(bits) +
                            " bits, not a whole number of bytes");
  if (e->end - e->begin != bits / 8)
    return invalid_argument("tensor " + in_quotes(name) + ": data_offsets " + range + " span " +
                            std::to_string(e->end - e->begin) + " bytes but " + e->dtype_text +
                            " shape " + shape_text(e->shape) + " needs " +
                            std::to_string(bits / 8));
  return Status::ok();
}

Expected<Entry> parse_entry(const std::string& name, const json& v) {
  if (!v.is_object())
    return invalid_argument("tensor " + in_quotes(name) + ": entry must be an object, found a " +
                            v.type_name());
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key))
      return invalid_argument("tensor " + in_quotes(name) + ": entry has no " + key);
  Entry e;
  e.name = name;
  ATTN_RETURN_IF_ERROR(parse_dtype(name, v["dtype"], &e));
  ATTN_RETURN_IF_ERROR(parse_shape(name, v["shape"], &e));
  ATTN_RETURN_IF_ERROR(parse_offsets(name, v["data_offsets"], &e));
  return e;
}

// Offsets must tile the data buffer exactly: sorted, no overlap, no gap, nothing after.
Status check_layout(const std::vector<Entry>& entries, uint64_t buffer_bytes) {
  std::vector<const Entry*> order;
  for (const Entry& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : order) {
    if (e->begin < pos)
      return invalid_argument("tensors " + in_quotes(prev->name) + " and " + in_quotes(e->name) +
                              " overlap in the data buffer: the first ends at byte " +
                              std::to_string(pos) + ", the second begins at byte " +
                              std::to_string(e->begin));
    if (e->begin > pos)
      return invalid_argument(
          "gap of " + std::to_string(e->begin - pos) + " bytes in the data buffer " +
          (prev ? "between tensors " + in_quotes(prev->name) + " and " + in_quotes(e->name)
                : "before the first tensor " + in_quotes(e->name)));
    if (e->end > buffer_bytes)
      return invalid_argument("tensor " + in_quotes(e->name) + " ends at byte " +
                              std::to_string(e->end) + ", past the end of the data buffer (" +
                              std::to_string(buffer_bytes) + " bytes): the file is truncated");
    pos = e->end;
    prev = e;
  }
  if (pos < buffer_bytes)
    return invalid_argument(std::to_string(buffer_bytes - pos) +
                            " trailing bytes after the last tensor in the data buffer");
  return Status::ok();
}

// A file read by the format's rules alone.
struct FormatView {
  uint64_t header_len = 0;
  std::string_view header_text;
  json root;                   // the header, duplicates resolved as the reference does (the last)
  std::vector<Entry> entries;  // every tensor, in header order
  std::string duplicate;       // the first key given twice at the top or in __metadata__, if any
};

Expected<FormatView> read_format(const uint8_t* bytes, uint64_t size) {
  if (size < 8)
    return invalid_argument("file is " + std::to_string(size) +
                            " bytes, shorter than the 8-byte header length: truncated");
  FormatView f;
  std::memcpy(&f.header_len, bytes, 8);
  if (f.header_len > kMaxHeaderBytes)
    return invalid_argument("header length " + std::to_string(f.header_len) +
                            " exceeds the 100 MB limit");
  if (8 + f.header_len > size)
    return invalid_argument("header length " + std::to_string(f.header_len) +
                            " runs past the end of the file (" + std::to_string(size) +
                            " bytes): truncated or not a safetensors file");
  f.header_text = std::string_view(reinterpret_cast<const char*>(bytes) + 8, f.header_len);
  // The reference parses the header as JSON text: surrounding JSON whitespace (space, tab, CR,
  // LF) is allowed, anything else is not. nlohmann would skip a byte-order mark and stop at a
  // NUL (accepting what follows), so both are refused here; valid JSON holds neither.
  if (f.header_text.starts_with("\xEF\xBB\xBF"))
    return invalid_argument("the header starts with a byte-order mark: not JSON");
  if (const size_t nul = f.header_text.find('\0'); nul != std::string_view::npos)
    return invalid_argument("NUL byte at offset " + std::to_string(8 + nul) +
                            " in the header: safetensors headers are JSON padded with spaces");

  // Equal keys: the reference keeps the last at the top and in __metadata__, but refuses a
  // field given twice in a tensor entry.
  std::vector<std::set<std::string>> open_objects;
  std::string top_key;
  int nesting = 0;
  json::parser_callback_t watch = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) open_objects.emplace_back();
    if (event == json::parse_event_t::object_end) open_objects.pop_back();
    if (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start)
      if (++nesting > kMaxFormatNesting)
        throw JsonFault{"header nests deeper than " + std::to_string(kMaxFormatNesting) +
                        " levels, the safetensors reference's limit"};
    if (event == json::parse_event_t::object_end || event == json::parse_event_t::array_end)
      --nesting;
    if (event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (depth == 1) top_key = key;
      if (!open_objects.back().insert(key).second) {
        if (depth == 2 && top_key != kMetadataKey)
          throw JsonFault{"tensor " + in_quotes(top_key) + ": field " + in_quotes(key) +
                          " given twice"};
        if (f.duplicate.empty()) f.duplicate = key;
      }
    }
    return true;
  };
  try {
    f.root = json::parse(f.header_text.begin(), f.header_text.end(), watch);
  } catch (const JsonFault& fault) {
    return invalid_argument(fault.message);
  } catch (const json::exception& e) {
    return invalid_argument("header is not valid UTF-8 JSON: " + printable(e.what(), 200));
  }
  if (!f.root.is_object())
    return invalid_argument(std::string("header is a JSON ") + f.root.type_name() +
                            ", not an object");
  for (const auto& [name, v] : f.root.items()) {
    if (name == kMetadataKey) {
      if (v.is_null()) continue;
      if (!v.is_object())
        return invalid_argument(std::string(kMetadataKey) + " must be an object, found a " +
                                v.type_name());
      for (const auto& [k, value] : v.items())
        if (!value.is_string())
          return invalid_argument(std::string(kMetadataKey) + " value " + in_quotes(k) +
                                  " must be a string, found a " + value.type_name());
      continue;
    }
    auto e = parse_entry(name, v);
    if (!e) return e.status();
    f.entries.push_back(std::move(*e));
  }
  ATTN_RETURN_IF_ERROR(check_layout(f.entries, size - 8 - f.header_len));
  return f;
}

// Attnscope's rules beyond the format's (engine/io/FORMAT.md): no key given twice anywhere,
// entries of exactly dtype, shape and data_offsets, F32, F16 or BF16 tensors only.
Status check_attnscope_header(const FormatView& f) {
  if (!f.duplicate.empty())
    return invalid_argument("duplicate key " + in_quotes(f.duplicate) + " in the header");
  auto strict = parse_strict(f.header_text, "header", kMaxHeaderNesting);
  if (!strict) return strict.status();
  for (const Entry& e : f.entries) {
    const json& v = f.root[e.name];
    if (v.size() != 3) {
      std::string keys;
      for (const auto& [k, _] : v.items()) keys += (keys.empty() ? "" : ", ") + in_quotes(k);
      return invalid_argument("tensor " + in_quotes(e.name) +
                              ": entry must have exactly the keys dtype, shape and "
                              "data_offsets, found " +
                              keys);
    }
    if (!e.dtype)
      return invalid_argument("tensor " + in_quotes(e.name) + " has dtype " +
                              in_quotes(e.dtype_text) + "; Attnscope reads F32, F16 and BF16 only");
  }
  return Status::ok();
}

Expected<ModelConfig> parse_metadata(const json& root) {
  auto meta = root.find(kMetadataKey);
  if (meta == root.end())
    return invalid_argument(std::string("no ") + kMetadataKey +
                            " in the header: not an Attnscope model file (the configuration "
                            "lives in " +
                            kMetadataKey + "[\"" + kConfigKey + "\"])");
  if (!meta->is_object())
    return invalid_argument(std::string(kMetadataKey) + " must be an object, found a " +
                            meta->type_name());
  for (const auto& [k, v] : meta->items())
    if (!v.is_string())
      return invalid_argument(std::string(kMetadataKey) + " value " + in_quotes(k) +
                              " must be a string, found a " + v.type_name());
  auto version = meta->find(kVersionKey);
  if (version != meta->end() && version->get_ref<const std::string&>() != kFormatVersion)
    return invalid_argument("file format version " +
                            in_quotes(version->get_ref<const std::string&>()) +
                            " is not supported; this build reads version " + kFormatVersion);
  auto config = meta->find(kConfigKey);
  if (config == meta->end())
    return invalid_argument(std::string(kMetadataKey) + " has no \"" + kConfigKey +
                            "\": not an Attnscope model file");
  const auto& text = config->get_ref<const std::string&>();
  auto strict = parse_strict(text, "configuration", kMaxConfigNesting);
  if (!strict) return strict.status();
  auto cfg = config_from_json(text);
  if (!cfg) return invalid_argument("configuration: " + cfg.status().message());
  return cfg;
}

// Names and shapes against the configuration before any byte is converted or copied.
Status check_against_specs(const ModelConfig& cfg, const std::vector<Entry>& entries) {
  std::map<std::string, const Entry*> by_name;
  for (const Entry& e : entries) by_name[e.name] = &e;
  std::set<std::string> expected;
  for (const ParamSpec& spec : model_param_specs(cfg)) {
    expected.insert(spec.name);
    auto it = by_name.find(spec.name);
    if (it == by_name.end())
      return invalid_argument("missing tensor " + in_quotes(spec.name) +
                              ": the configuration expects shape " + shape_text(spec.shape) +
                              ", found none");
    if (it->second->shape != spec.shape)
      return invalid_argument("tensor " + in_quotes(spec.name) + " has shape " +
                              shape_text(it->second->shape) + " but the configuration expects " +
                              shape_text(spec.shape));
  }
  for (const Entry& e : entries)
    if (!expected.count(e.name))
      return invalid_argument("extra tensor " + in_quotes(e.name) + " with shape " +
                              shape_text(e.shape) + ": the configuration has no such tensor");
  return Status::ok();
}

Status check_finite(const std::string& name, const float* v, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i]))
      return invalid_argument("tensor " + in_quotes(name) + " has " +
                              (std::isnan(v[i]) ? "a NaN" : "an infinity") + " at element " +
                              std::to_string(i));
  return Status::ok();
}

// The tensor in memory: F32 borrowed from the map when aligned, everything else copied.
Expected<Tensor> make_tensor(const Entry& e, const uint8_t* data,
                             const std::shared_ptr<Mapping>& map, size_t* borrowed_bytes) {
  const uint8_t* src = data + e.begin;
  if (e.dtype == DType::kF32 && e.numel > 0 &&
      reinterpret_cast<uintptr_t>(src) % alignof(float) == 0) {
    // The map is private and writable: a caller that changes a weight (training) gets its
    // own copy-on-write page; the file itself is never written.
    auto* p = reinterpret_cast<float*>(const_cast<uint8_t*>(src));
    ATTN_RETURN_IF_ERROR(check_finite(e.name, p, e.numel));
    *borrowed_bytes += e.numel * sizeof(float);
    return Tensor::borrow(p, e.shape, map);
  }
  Tensor t = Tensor::zeros(e.shape, MemCategory::kWeights);
  float* dst = t.data();
  for (uint64_t i = 0; i < e.numel; ++i) {
    switch (*e.dtype) {
      case DType::kF32:
        std::memcpy(&dst[i], src + 4 * i, 4);
        break;
      case DType::kF16:
      case DType::kBF16: {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = *e.dtype == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
        break;
      }
    }
  }
  ATTN_RETURN_IF_ERROR(check_finite(e.name, dst, e.numel));
  return t;
}

// The file mapped privately (copy-on-write: never written back).
Expected<std::shared_ptr<Mapping>> map_file(const std::string& path) {
  FileDescriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.fd < 0) {
    int err = errno;
    if (err == ENOENT) return not_found("no such model file");
    return internal_error(std::string("cannot open: ") + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(file.fd, &st) != 0)
    return internal_error(std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return invalid_argument("not a regular file");
  auto size = static_cast<uint64_t>(st.st_size);
  if (size < 8)
    return invalid_argument("file is " + std::to_string(size) +
                            " bytes, shorter than the 8-byte header length: truncated");
  auto map = std::make_shared<Mapping>();
  map->size = static_cast<size_t>(size);
  map->base = ::mmap(nullptr, map->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, file.fd, 0);
  if (map->base == MAP_FAILED)
    return internal_error(std::string("cannot map the file: ") + std::strerror(errno));
  return map;
}

Status check_format_file(const std::string& path) {
  auto map = map_file(path);
  if (!map) return map.status();
  auto format = read_format(static_cast<const uint8_t*>((*map)->base), (*map)->size);
  return format ? Status::ok() : format.status();
}

Expected<LoadedModel> load_file(const std::string& path) {
  auto mapped = map_file(path);
  if (!mapped) return mapped.status();
  std::shared_ptr<Mapping> map = std::move(*mapped);
  const auto* bytes = static_cast<const uint8_t*>(map->base);
  const auto size = static_cast<uint64_t>(map->size);

  auto format = read_format(bytes, size);
  if (!format) return format.status();
  ATTN_RETURN_IF_ERROR(check_attnscope_header(*format));
  const json* root = &format->root;
  std::vector<Entry>& entries = format->entries;
  const uint64_t header_len = format->header_len;

  auto cfg = parse_metadata(*root);
  if (!cfg) return cfg.status();
  ATTN_RETURN_IF_ERROR(check_against_specs(*cfg, entries));

  LoadedModel out;
  out.cfg = *cfg;
  out.file_bytes = static_cast<size_t>(size);
  const uint8_t* data = bytes + 8 + header_len;
  size_t borrowed = 0;
  for (const Entry& e : entries) {
    auto t = make_tensor(e, data, map, &borrowed);
    if (!t) return t.status();
    out.weights.emplace(e.name, std::move(*t));
  }
  ATTN_RETURN_IF_ERROR(model_check_weights(out.cfg, out.weights));
  map->tracked = borrowed;
  if (borrowed) MemTracker::instance().on_alloc(MemCategory::kWeights, borrowed);
  return out;
}

// ---- writing ----

// Refuses what the reader would refuse: a value that is not finite once stored in dtype.
Status check_storable(const std::string& name, const Tensor& t, DType dtype) {
  const float* v = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (!std::isfinite(v[i]))
      return invalid_argument("tensor " + in_quotes(name) + " has " +
                              (std::isnan(v[i]) ? "a NaN" : "an infinity") + " at element " +
                              std::to_string(i));
    if (!std::isfinite(stored_value(v[i], dtype)))
      return invalid_argument("tensor " + in_quotes(name) + " element " + std::to_string(i) + " (" +
                              std::to_string(v[i]) + ") does not fit " + dtype_name(dtype) +
                              "; save as F32" + (dtype == DType::kF16 ? " or BF16" : ""));
  }
  return Status::ok();
}

Status write_tensor(const FileAppender& append, const Tensor& t, DType dtype) {
  const float* v = t.data();
  auto n = static_cast<size_t>(t.numel());
  if (dtype == DType::kF32) return append(v, n * sizeof(float));
  constexpr size_t kChunk = 1 << 15;
  std::vector<uint16_t> buf(std::min(n, kChunk));
  for (size_t i = 0; i < n; i += kChunk) {
    size_t m = std::min(kChunk, n - i);
    for (size_t k = 0; k < m; ++k)
      buf[k] = dtype == DType::kF16 ? f32_to_f16(v[i + k]) : f32_to_bf16(v[i + k]);
    ATTN_RETURN_IF_ERROR(append(buf.data(), m * sizeof(uint16_t)));
  }
  return Status::ok();
}

Status save_file(const std::string& path, const ModelConfig& given, const WeightMap& w,
                 DType dtype) {
  ModelConfig cfg = given;
  ATTN_RETURN_IF_ERROR(config_resolve(cfg));
  ATTN_RETURN_IF_ERROR(config_validate(cfg));
  ATTN_RETURN_IF_ERROR(model_check_weights(cfg, w));
  for (const auto& [name, t] : w) ATTN_RETURN_IF_ERROR(check_storable(name, t, dtype));

  json header = json::object();
  header[kMetadataKey] = {
      {"format", "attnscope"}, {kConfigKey, config_to_json(cfg)}, {kVersionKey, kFormatVersion}};
  uint64_t offset = 0;
  for (const auto& [name, t] : w) {  // a std::map: sorted by name, the file order
    uint64_t bytes = static_cast<uint64_t>(t.numel()) * dtype_size(dtype);
    header[name] = {{"dtype", dtype_name(dtype)},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data buffer starts 8-byte aligned
  uint64_t header_len = text.size();

  AtomicFileSet file(0644);
  ATTN_RETURN_IF_ERROR(file.add_streamed(path, [&](const FileAppender& append) {
    ATTN_RETURN_IF_ERROR(append(&header_len, 8));
    ATTN_RETURN_IF_ERROR(append(text.data(), text.size()));
    for (const auto& [name, t] : w) ATTN_RETURN_IF_ERROR(write_tensor(append, t, dtype));
    return Status::ok();
  }));
  return file.commit();
}

}  // namespace

Status safetensors_save(const std::string& path, const ModelConfig& cfg, const WeightMap& w,
                        DType dtype) {
  Status st;
  try {
    st = save_file(path, cfg, w, dtype);
  } catch (const std::exception& e) {
    st = internal_error(e.what());
  }
  if (st.is_ok()) return st;
  return {st.code(), "cannot save " + path + ": " + st.message()};
}

Status safetensors_check_format(const std::string& path) {
  Status st;
  try {
    st = check_format_file(path);
  } catch (const std::exception& e) {
    st = internal_error(e.what());
  }
  if (st.is_ok()) return st;
  return {st.code(), path + ": " + st.message()};
}

Expected<LoadedModel> safetensors_load(const std::string& path) {
  Status st;
  try {
    auto loaded = load_file(path);
    if (loaded) return loaded;
    st = loaded.status();
  } catch (const std::exception& e) {
    st = internal_error(e.what());
  }
  return Status(st.code(), path + ": " + st.message());
}

}  // namespace attnscope
