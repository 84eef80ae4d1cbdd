// The configuration schema: names, parsing, auto values, validation and JSON (nlohmann).
#include "attnscope/config.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "attnscope/params.h"

namespace attnscope {

using nlohmann::json;

namespace {
constexpr int64_t kMaxSeqLen = int64_t{1} << 21;  // 2M tokens: past the Reformer's 1M claim
constexpr int64_t kMaxParams = int64_t{1} << 30;  // 4 GB of float32 weights

template <typename E>
struct EnumName {
  E value;
  const char* name;
};
constexpr EnumName<Family> kFamilies[] = {{Family::kDense, "dense"},
                                          {Family::kSparse, "sparse"},
                                          {Family::kReformer, "reformer"},
                                          {Family::kPerceiverAR, "perceiver-ar"},
                                          {Family::kHourglass, "hourglass"}};
constexpr EnumName<SparsePattern> kPatterns[] = {{SparsePattern::kStrided, "strided"},
                                                 {SparsePattern::kFixed, "fixed"}};
constexpr EnumName<SparseCombine> kCombines[] = {{SparseCombine::kInterleaved, "interleaved"},
                                                 {SparseCombine::kMerged, "merged"},
                                                 {SparseCombine::kPerHead, "per-head"}};
constexpr EnumName<HourglassPool> kPools[] = {{HourglassPool::kAverage, "average"},
                                              {HourglassPool::kLinear, "linear"}};
constexpr EnumName<HourglassUpsample> kUps[] = {{HourglassUpsample::kRepeat, "repeat"},
                                                {HourglassUpsample::kLinear, "linear"}};
constexpr EnumName<PerceiverDecode> kDecodes[] = {{PerceiverDecode::kExact, "exact"},
                                                  {PerceiverDecode::kCached, "cached"}};

template <typename E, size_t K>
const char* enum_name(const EnumName<E> (&table)[K], E v) {
  for (const auto& e : table)
    if (e.value == v) return e.name;
  return "?";
}

template <typename E, size_t K>
Expected<E> enum_parse(const EnumName<E> (&table)[K], const std::string& s, const char* what) {
  std::string options;
  for (const auto& e : table) {
    if (s == e.name) return e.value;
    options += std::string(options.empty() ? "" : ", ") + e.name;
  }
  return invalid_argument(std::string("unknown ") + what + " '" + s +
                          "' (expected one of: " + options + ")");
}

bool parse_int(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  int64_t v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + (ch - '0');
  }
  *out = v;
  return true;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) break;
    start = at + 1;
  }
  return parts;
}
}  // namespace

const char* family_name(Family f) {
  return enum_name(kFamilies, f);
}
Expected<Family> family_from_name(const std::string& s) {
  return enum_parse(kFamilies, s, "family");
}
const char* perceiver_decode_name(PerceiverDecode d) {
  return enum_name(kDecodes, d);
}
Expected<PerceiverDecode> perceiver_decode_from_name(const std::string& s) {
  return enum_parse(kDecodes, s, "Perceiver AR decode scheme");
}

int64_t Modality::seq_len() const {
  switch (kind) {
    case ModalityKind::kImage:
      return int64_t{width} * height * channels;
    case ModalityKind::kAudio:
      return static_cast<int64_t>(std::llround(rate * seconds));
    case ModalityKind::kText:
      return length;
  }
  return 0;
}

std::string Modality::describe() const {
  switch (kind) {
    case ModalityKind::kImage:
      return "image:" + std::to_string(width) + "x" + std::to_string(height) + "x" +
             std::to_string(channels);
    case ModalityKind::kAudio: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "audio:%d:%g", rate, seconds);
      return buf;
    }
    case ModalityKind::kText:
      return "text:" + std::to_string(length);
  }
  return "?";
}

Expected<Modality> modality_parse(const std::string& s) {
  const std::string usage =
      "expected image:WxHxC, audio:RATE:SECONDS or text:LENGTH, got '" + s + "'";
  auto parts = split(s, ':');
  Modality m;
  if (parts[0] == "image" && parts.size() == 2) {
    auto dims = split(parts[1], 'x');
    int64_t v[3];
    if (dims.size() != 3 || !parse_int(dims[0], &v[0]) || !parse_int(dims[1], &v[1]) ||
        !parse_int(dims[2], &v[2]))
      return invalid_argument("bad modality: " + usage);
    if (v[0] < 1 || v[0] > 1024 || v[1] < 1 || v[1] > 1024)
      return invalid_argument("image width and height must be in 1..1024");
    if (v[2] < 1 || v[2] > 4) return invalid_argument("image channels must be in 1..4");
    m.kind = ModalityKind::kImage;
    m.width = static_cast<int>(v[0]);
    m.height = static_cast<int>(v[1]);
    m.channels = static_cast<int>(v[2]);
    return m;
  }
  if (parts[0] == "audio" && parts.size() == 3) {
    int64_t rate;
    char* end = nullptr;
    double secs = std::strtod(parts[2].c_str(), &end);
    if (!parse_int(parts[1], &rate) || parts[2].empty() || *end != '\0' || !std::isfinite(secs))
      return invalid_argument("bad modality: " + usage);
    if (rate < 1000 || rate > 48000)
      return invalid_argument("audio rate must be in 1000..48000 Hz");
    if (!(secs > 0) || secs > 3600) return invalid_argument("audio seconds must be in (0, 3600]");
    m.kind = ModalityKind::kAudio;
    m.rate = static_cast<int>(rate);
    m.seconds = secs;
    if (m.seq_len() < 1) return invalid_argument("audio clip is shorter than one sample");
    return m;
  }
  if (parts[0] == "text" && parts.size() == 2) {
    int64_t len;
    if (!parse_int(parts[1], &len) || len < 1) return invalid_argument("bad modality: " + usage);
    if (len > kMaxSeqLen) return invalid_argument("text length is over the 2,097,152-token limit");
    m.kind = ModalityKind::kText;
    m.length = static_cast<int>(len);
    return m;
  }
  return invalid_argument("bad modality: " + usage);
}

Expected<std::vector<HourglassLevel>> hourglass_parse(const std::string& spec) {
  std::vector<HourglassLevel> levels;
  for (const std::string& item : split(spec, ',')) {
    auto lf = split(item, '@');
    int64_t layers, factor;
    if (lf.size() != 2 || !parse_int(lf[0], &layers) || !parse_int(lf[1], &factor))
      return invalid_argument("hourglass hierarchy '" + spec +
                              "': each item is LAYERS@FACTOR, e.g. 2@1,4@3,2@1");
    if (layers < 0 || layers > 256 || factor < 1 || factor > 4096)
      return invalid_argument("hourglass hierarchy '" + spec +
                              "': layers in 0..256, factor in 1..4096");
    levels.push_back({static_cast<int>(layers), static_cast<int>(factor)});
  }
  const size_t n = levels.size();
  if (n % 2 == 0)
    return invalid_argument("hourglass hierarchy '" + spec +
                            "' must have an odd number of levels (down, middle, up)");
  if (levels[0].factor != 1)
    return invalid_argument("hourglass hierarchy '" + spec + "' must start at factor 1");
  for (size_t i = 0; i < n; ++i) {
    if (levels[i].factor != levels[n - 1 - i].factor)
      return invalid_argument("hourglass hierarchy '" + spec +
                              "': factors must read the same both ways");
    if (i > 0 && i <= n / 2) {
      const int prev = levels[i - 1].factor, cur = levels[i].factor;
      if (cur <= prev || cur % prev != 0)
        return invalid_argument("hourglass hierarchy '" + spec +
                                "': factors must rise to the middle, each a multiple of the last");
    }
  }
  return levels;
}

Status config_resolve(ModelConfig& c) {
  const int64_t n = c.seq_len();
  if (c.ff_dim == 0 && c.dim > 0 && c.dim <= 8192) c.ff_dim = 4 * c.dim;
  if (c.family == Family::kSparse && c.sparse.stride == 0) {
    if (c.sparse.pattern == SparsePattern::kFixed) {
      c.sparse.stride = 128;
    } else {
      const int b = c.sparse.block > 0 ? c.sparse.block : 32;
      const int root = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
      c.sparse.stride = std::max(b, (root + b - 1) / b * b);
    }
  }
  if (c.pos_width == 0) {
    c.pos_width = (c.family == Family::kSparse && c.sparse.stride > 0)
                      ? c.sparse.stride
                      : static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
    if (c.pos_width < 1) c.pos_width = 1;
  }
  if (c.family == Family::kReformer && c.lsh.n_buckets == 0 && c.lsh.chunk > 0) {
    int64_t b = (2 * n + c.lsh.chunk - 1) / c.lsh.chunk;
    b = std::max<int64_t>(2, (b + 1) / 2 * 2);
    c.lsh.n_buckets = static_cast<int>(std::min<int64_t>(b, 1 << 20));
  }
  if (c.family == Family::kPerceiverAR && c.perceiver.latents == 0)
    c.perceiver.latents = static_cast<int>(std::min<int64_t>(n, 256));
  if (c.family == Family::kHourglass) {
    auto levels = hourglass_parse(c.hourglass.hierarchy);
    if (!levels) return levels.status();
    int total = 0;
    for (const auto& l : *levels) total += l.layers;
    c.layers = total;
  }
  return Status::ok();
}

Status config_validate(const ModelConfig& c) {
  const int64_t n = c.seq_len();
  if (n < 1 || n > kMaxSeqLen)
    return invalid_argument("sequence length " + std::to_string(n) + " is outside 1..2,097,152");
  if (c.dim < 1 || c.dim > 8192) return invalid_argument("dim must be in 1..8192");
  if (c.heads < 1 || c.heads > 256) return invalid_argument("heads must be in 1..256");
  if (c.dim % c.heads != 0)
    return invalid_argument("dim (" + std::to_string(c.dim) + ") must be a multiple of heads (" +
                            std::to_string(c.heads) + ")");
  if (c.ff_dim < 1 || c.ff_dim > 65536) return invalid_argument("ff_dim must be in 1..65536");
  if (c.family != Family::kHourglass && (c.layers < 1 || c.layers > 512))
    return invalid_argument("layers must be in 1..512");
  if (c.pos_width < 1 || c.pos_width > n) return invalid_argument("pos_width must be in 1..N");
  switch (c.family) {
    case Family::kDense:
      break;
    case Family::kSparse: {
      const auto& s = c.sparse;
      if (s.block != 16 && s.block != 32 && s.block != 64 && s.block != 128)
        return invalid_argument("sparse.block must be 16, 32, 64 or 128");
      if (s.stride < s.block || s.stride % s.block != 0)
        return invalid_argument("sparse.stride must be a positive multiple of sparse.block");
      if (s.pattern == SparsePattern::kFixed && (s.summary < 1 || s.summary > s.stride))
        return invalid_argument("sparse.summary must be in 1..stride");
      break;
    }
    case Family::kReformer: {
      const auto& l = c.lsh;
      if (l.n_hashes < 1 || l.n_hashes > 16)
        return invalid_argument("lsh.n_hashes must be in 1..16");
      if (l.chunk < 1 || l.chunk > 8192) return invalid_argument("lsh.chunk must be in 1..8192");
      if (l.n_buckets < 2 || l.n_buckets % 2 != 0 || l.n_buckets > (1 << 20))
        return invalid_argument("lsh.n_buckets must be even and in 2..1,048,576");
      if (l.ff_chunks < 1 || l.ff_chunks > 4096)
        return invalid_argument("lsh.ff_chunks must be in 1..4096");
      break;
    }
    case Family::kPerceiverAR: {
      if (c.perceiver.latents < 1 || c.perceiver.latents > n)
        return invalid_argument("perceiver.latents must be in 1..N (N = " + std::to_string(n) +
                                ")");
      if (!(c.perceiver.cross_dropout >= 0 && c.perceiver.cross_dropout < 1))
        return invalid_argument("perceiver.cross_dropout must be in [0, 1)");
      break;
    }
    case Family::kHourglass: {
      auto levels = hourglass_parse(c.hourglass.hierarchy);
      if (!levels) return levels.status();
      int total = 0;
      for (const auto& l : *levels) total += l.layers;
      if (total < 1 || total > 512)
        return invalid_argument("hourglass hierarchy must have 1..512 layers");
      if (total != c.layers)
        return invalid_argument("layers must equal the hierarchy's layer count");
      break;
    }
  }
  if (model_param_count(c) > kMaxParams)
    return invalid_argument("model would have " + std::to_string(model_param_count(c)) +
                            " parameters, over the 1,073,741,824 limit");
  return Status::ok();
}

std::string config_to_json(const ModelConfig& c) {
  json j = {
      {"family", family_name(c.family)},
      {"modality", c.modality.describe()},
      {"layers", c.layers},
      {"dim", c.dim},
      {"heads", c.heads},
      {"ff_dim", c.ff_dim},
      {"pos_width", c.pos_width},
      {"seed", c.seed},
      {"sparse",
       {{"pattern", enum_name(kPatterns, c.sparse.pattern)},
        {"stride", c.sparse.stride},
        {"block", c.sparse.block},
        {"summary", c.sparse.summary},
        {"combine", enum_name(kCombines, c.sparse.combine)}}},
      {"lsh",
       {{"n_hashes", c.lsh.n_hashes},
        {"chunk", c.lsh.chunk},
        {"n_buckets", c.lsh.n_buckets},
        {"reversible", c.lsh.reversible},
        {"ff_chunks", c.lsh.ff_chunks}}},
      {"perceiver",
       {{"latents", c.perceiver.latents}, {"cross_dropout", c.perceiver.cross_dropout}}},
      {"hourglass",
       {{"hierarchy", c.hourglass.hierarchy},
        {"pool", enum_name(kPools, c.hourglass.pool)},
        {"upsample", enum_name(kUps, c.hourglass.upsample)}}},
  };
  return j.dump();
}

namespace {
// Reads typed keys from one JSON object and refuses anything it was not asked about.
class Reader {
 public:
  Reader(const json& obj, std::string where) : obj_(obj), where_(std::move(where)) {}

  template <typename T>
  void get(const char* key, T* out) {
    if (!st_.is_ok() || !obj_.contains(key)) return;
    seen_.insert(key);
    const json& v = obj_.at(key);
    bool ok = false;
    if constexpr (std::is_same_v<T, bool>)
      ok = v.is_boolean();
    else if constexpr (std::is_same_v<T, std::string>)
      ok = v.is_string();
    else if constexpr (std::is_floating_point_v<T>)
      ok = v.is_number();
    else if constexpr (std::is_unsigned_v<T>)
      ok = v.is_number_unsigned();
    else
      ok = v.is_number_integer() && v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX;
    if (!ok) {
      st_ = invalid_argument("config key '" + where_ + key + "' has the wrong type or range");
      return;
    }
    *out = v.get<T>();
  }
  const json* object(const char* key) {
    if (!st_.is_ok() || !obj_.contains(key)) return nullptr;
    seen_.insert(key);
    if (!obj_.at(key).is_object()) {
      st_ = invalid_argument("config key '" + where_ + key + "' must be an object");
      return nullptr;
    }
    return &obj_.at(key);
  }
  Status finish() {
    if (!st_.is_ok()) return st_;
    for (const auto& [k, v] : obj_.items())
      if (!seen_.count(k)) return invalid_argument("unknown config key '" + where_ + k + "'");
    return Status::ok();
  }
  void fail(Status s) {
    if (st_.is_ok()) st_ = std::move(s);
  }

 private:
  const json& obj_;
  std::string where_;
  std::set<std::string> seen_;
  Status st_;
};

template <typename E, size_t K>
void get_enum(Reader& r, const char* key, const EnumName<E> (&table)[K], E* out, const char* what) {
  std::string s = "\x01";  // not a name any table holds: tells "absent" from ""
  r.get(key, &s);
  if (s == "\x01") return;
  auto v = enum_parse(table, s, what);
  if (!v) return r.fail(v.status());
  *out = *v;
}
}  // namespace

Expected<ModelConfig> config_from_json(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid_argument("config is not valid JSON");
  if (!j.is_object()) return invalid_argument("config must be a JSON object");
  ModelConfig c;
  Reader r(j, "");
  std::string family, modality;
  r.get("family", &family);
  r.get("modality", &modality);
  r.get("layers", &c.layers);
  r.get("dim", &c.dim);
  r.get("heads", &c.heads);
  r.get("ff_dim", &c.ff_dim);
  r.get("pos_width", &c.pos_width);
  r.get("seed", &c.seed);
  if (const json* s = r.object("sparse")) {
    Reader rs(*s, "sparse.");
    get_enum(rs, "pattern", kPatterns, &c.sparse.pattern, "sparse pattern");
    rs.get("stride", &c.sparse.stride);
    rs.get("block", &c.sparse.block);
    rs.get("summary", &c.sparse.summary);
    get_enum(rs, "combine", kCombines, &c.sparse.combine, "sparse combine");
    r.fail(rs.finish());
  }
  if (const json* s = r.object("lsh")) {
    Reader rs(*s, "lsh.");
    rs.get("n_hashes", &c.lsh.n_hashes);
    rs.get("chunk", &c.lsh.chunk);
    rs.get("n_buckets", &c.lsh.n_buckets);
    rs.get("reversible", &c.lsh.reversible);
    rs.get("ff_chunks", &c.lsh.ff_chunks);
    r.fail(rs.finish());
  }
  if (const json* s = r.object("perceiver")) {
    Reader rs(*s, "perceiver.");
    rs.get("latents", &c.perceiver.latents);
    rs.get("cross_dropout", &c.perceiver.cross_dropout);
    r.fail(rs.finish());
  }
  if (const json* s = r.object("hourglass")) {
    Reader rs(*s, "hourglass.");
    rs.get("hierarchy", &c.hourglass.hierarchy);
    get_enum(rs, "pool", kPools, &c.hourglass.pool, "hourglass pool");
    get_enum(rs, "upsample", kUps, &c.hourglass.upsample, "hourglass upsample");
    r.fail(rs.finish());
  }
  ATTN_RETURN_IF_ERROR(r.finish());
  if (family.empty()) return invalid_argument("config has no 'family'");
  if (modality.empty()) return invalid_argument("config has no 'modality'");
  auto f = family_from_name(family);
  if (!f) return f.status();
  c.family = *f;
  auto m = modality_parse(modality);
  if (!m) return m.status();
  c.modality = *m;
  ATTN_RETURN_IF_ERROR(config_resolve(c));
  ATTN_RETURN_IF_ERROR(config_validate(c));
  return c;
}

}  // namespace attnscope
