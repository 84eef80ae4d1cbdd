// Mu-law coding, the WAV reader and writer, and linear resampling (see attnscope/audio.h).
// A small RIFF reader of our own: the distribution's audio libraries (libsndfile) would add a
// dependency to the engine for the one container the tools need.
#include "attnscope/audio.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "attnscope/atomic_file.h"

namespace attnscope {

uint8_t audio_mulaw_encode(float x) {
  if (std::isnan(x)) x = 0.0f;
  const double c = std::clamp(static_cast<double>(x), -1.0, 1.0);
  const double f = std::copysign(std::log1p(kMuLaw * std::fabs(c)) / std::log1p(kMuLaw), c);
  const double q = std::floor((f + 1.0) / 2.0 * 255.0 + 0.5);
  return static_cast<uint8_t>(std::clamp(q, 0.0, 255.0));
}

float audio_mulaw_decode(uint8_t q) {
  const double f = q / 255.0 * 2.0 - 1.0;
  const double x = std::copysign((std::pow(1.0 + kMuLaw, std::fabs(f)) - 1.0) / kMuLaw, f);
  return static_cast<float>(x);
}

std::vector<uint8_t> audio_mulaw_encode(const std::vector<float>& samples) {
  std::vector<uint8_t> out(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) out[i] = audio_mulaw_encode(samples[i]);
  return out;
}

std::vector<float> audio_mulaw_decode(const std::vector<uint8_t>& codes) {
  std::vector<float> out(codes.size());
  for (size_t i = 0; i < codes.size(); ++i) out[i] = audio_mulaw_decode(codes[i]);
  return out;
}

namespace {

constexpr uint16_t kFormatPcm = 1;
constexpr uint16_t kFormatFloat = 3;
constexpr uint16_t kFormatExtensible = 0xFFFE;
constexpr int kMaxChannels = 64;

uint16_t read_u16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t read_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
void put_u16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v & 0xFF));
  out.push_back(static_cast<uint8_t>(v >> 8));
}
void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>((v >> (8 * i)) & 0xFF));
}

void put_tag(std::vector<uint8_t>& out, const char* tag) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(tag[i]));
}

struct WavFormat {
  uint16_t format = 0;
  int channels = 0;
  int rate = 0;
  int bits = 0;
  int block_align = 0;
};

// One sample of a frame as a float in [-1, 1] (integer PCM) or as stored (float32).
float decode_sample(const uint8_t* p, const WavFormat& f) {
  if (f.format == kFormatFloat) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  switch (f.bits) {
    case 8:
      return (static_cast<int>(p[0]) - 128) / 128.0f;
    case 16:
      return static_cast<int16_t>(read_u16(p)) / 32768.0f;
    case 24: {
      int32_t v = static_cast<int32_t>(p[0] | (p[1] << 8) | (p[2] << 16));
      if (v & 0x800000) v -= 0x1000000;
      return static_cast<float>(v / 8388608.0);
    }
    default:
      return static_cast<float>(static_cast<int32_t>(read_u32(p)) / 2147483648.0);
  }
}

Status parse_fmt(const uint8_t* p, uint32_t size, const std::string& name, WavFormat* f) {
  if (size < 16)
    return invalid_argument(name + ": WAV 'fmt ' chunk is " + std::to_string(size) +
                            " bytes, under the 16 it needs");
  f->format = read_u16(p);
  f->channels = read_u16(p + 2);
  const uint32_t rate = read_u32(p + 4);
  f->block_align = read_u16(p + 12);
  f->bits = read_u16(p + 14);
  if (f->format == kFormatExtensible) {
    if (size < 40)
      return invalid_argument(name + ": WAV extensible 'fmt ' chunk is shorter than 40 bytes");
    f->format = read_u16(p + 24);  // the sub-format GUID starts with the format code
  }
  if (f->format != kFormatPcm && f->format != kFormatFloat)
    return invalid_argument(name + ": WAV sample format " + std::to_string(f->format) +
                            " is not supported (only integer PCM and 32-bit float)");
  if (f->channels < 1 || f->channels > kMaxChannels)
    return invalid_argument(name + ": WAV has " + std::to_string(f->channels) + " channels (1.." +
                            std::to_string(kMaxChannels) + " supported)");
  if (rate < 1 || rate > 1000000)
    return invalid_argument(name + ": WAV sample rate " + std::to_string(rate) +
                            " is outside 1..1000000 Hz");
  f->rate = static_cast<int>(rate);
  const bool int_ok =
      f->format == kFormatPcm && (f->bits == 8 || f->bits == 16 || f->bits == 24 || f->bits == 32);
  const bool float_ok = f->format == kFormatFloat && f->bits == 32;
  if (!int_ok && !float_ok)
    return invalid_argument(name + ": WAV with " + std::to_string(f->bits) + "-bit " +
                            (f->format == kFormatFloat ? "float" : "integer") +
                            " samples is not supported (8/16/24/32-bit integer, 32-bit float)");
  if (f->block_align != f->channels * f->bits / 8)
    return invalid_argument(name + ": WAV block align " + std::to_string(f->block_align) +
                            " does not match " + std::to_string(f->channels) + " channels of " +
                            std::to_string(f->bits) + " bits");
  return Status::ok();
}

}  // namespace

Expected<AudioClip> audio_wav_parse(const uint8_t* data, size_t size, const std::string& name) {
  if (size < 12 || std::memcmp(data, "RIFF", 4) != 0 || std::memcmp(data + 8, "WAVE", 4) != 0)
    return invalid_argument(name + ": not a WAV file (no RIFF/WAVE header)");
  const uint64_t riff_end = uint64_t{read_u32(data + 4)} + 8;
  if (riff_end > size)
    return invalid_argument(name + ": WAV is truncated (the header says " +
                            std::to_string(riff_end) + " bytes, the file has " +
                            std::to_string(size) + ")");
  WavFormat fmt;
  bool have_fmt = false;
  const uint8_t* samples = nullptr;
  uint64_t sample_bytes = 0;
  uint64_t at = 12;
  while (at + 8 <= riff_end) {
    const uint8_t* chunk = data + at;
    const uint64_t chunk_size = read_u32(chunk + 4);
    if (at + 8 + chunk_size > riff_end)
      return invalid_argument(name + ": WAV chunk '" + std::string(chunk, chunk + 4) + "' of " +
                              std::to_string(chunk_size) + " bytes runs past the end of the file");
    if (std::memcmp(chunk, "fmt ", 4) == 0) {
      if (have_fmt) return invalid_argument(name + ": WAV has two 'fmt ' chunks");
      ATTN_RETURN_IF_ERROR(parse_fmt(chunk + 8, static_cast<uint32_t>(chunk_size), name, &fmt));
      have_fmt = true;
    } else if (std::memcmp(chunk, "data", 4) == 0) {
      if (samples) return invalid_argument(name + ": WAV has two 'data' chunks");
      samples = chunk + 8;
      sample_bytes = chunk_size;
    }
    at += 8 + chunk_size + (chunk_size & 1);  // chunks are padded to an even size
  }
  if (!have_fmt) return invalid_argument(name + ": WAV has no 'fmt ' chunk");
  if (!samples) return invalid_argument(name + ": WAV has no 'data' chunk");
  if (sample_bytes % static_cast<uint64_t>(fmt.block_align) != 0)
    return invalid_argument(name + ": WAV 'data' chunk of " + std::to_string(sample_bytes) +
                            " bytes is not a whole number of " + std::to_string(fmt.block_align) +
                            "-byte frames");

  AudioClip clip;
  clip.rate = fmt.rate;
  const uint64_t frames = sample_bytes / static_cast<uint64_t>(fmt.block_align);
  clip.samples.resize(static_cast<size_t>(frames));
  const int bytes = fmt.bits / 8;
  for (uint64_t i = 0; i < frames; ++i) {
    const uint8_t* frame = samples + i * static_cast<uint64_t>(fmt.block_align);
    double sum = 0;
    for (int c = 0; c < fmt.channels; ++c) sum += decode_sample(frame + c * bytes, fmt);
    if (!std::isfinite(sum))
      return invalid_argument(name + ": WAV frame " + std::to_string(i) +
                              " holds a value that is not a finite number");
    clip.samples[static_cast<size_t>(i)] =
        static_cast<float>(std::clamp(sum / fmt.channels, -1.0, 1.0));
  }
  return clip;
}

Expected<AudioClip> audio_wav_read(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return not_found(path + ": no such file");
  constexpr uintmax_t kMaxBytes = uintmax_t{1} << 31;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return invalid_argument(path + ": cannot read (" + ec.message() + ")");
  if (size > kMaxBytes) return invalid_argument(path + ": WAV files over 2 GiB are not supported");
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_argument(path + ": cannot open for reading");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (static_cast<uintmax_t>(in.gcount()) != size)
    return invalid_argument(path + ": read fewer bytes than the file holds");
  return audio_wav_parse(bytes.data(), bytes.size(), path);
}

std::vector<uint8_t> audio_wav_encode(const AudioClip& clip) {
  const uint32_t data_bytes = static_cast<uint32_t>(clip.samples.size() * 2);
  std::vector<uint8_t> out;
  out.reserve(44 + data_bytes);
  put_tag(out, "RIFF");
  put_u32(out, 36 + data_bytes);
  put_tag(out, "WAVE");
  put_tag(out, "fmt ");
  put_u32(out, 16);
  put_u16(out, kFormatPcm);
  put_u16(out, 1);  // mono
  put_u32(out, static_cast<uint32_t>(clip.rate));
  put_u32(out, static_cast<uint32_t>(clip.rate) * 2);  // bytes per second
  put_u16(out, 2);                                     // block align
  put_u16(out, 16);                                    // bits per sample
  put_tag(out, "data");
  put_u32(out, data_bytes);
  for (float s : clip.samples) {
    const double c = std::isnan(s) ? 0.0 : std::clamp(static_cast<double>(s), -1.0, 1.0);
    const long v = std::clamp(std::lround(c * 32768.0), -32768L, 32767L);
    put_u16(out, static_cast<uint16_t>(static_cast<int16_t>(v)));
  }
  return out;
}

Status audio_wav_write(const std::string& path, const AudioClip& clip) {
  if (clip.rate < 1) return invalid_argument("WAV sample rate must be positive");
  if (clip.samples.size() > (uint64_t{1} << 30))
    return invalid_argument("clip is too long for one WAV file");
  return atomic_write_file(path, audio_wav_encode(clip));
}

std::vector<float> audio_resample_linear(const std::vector<float>& in, int from_rate, int to_rate) {
  if (from_rate == to_rate || in.empty() || from_rate <= 0 || to_rate <= 0) return in;
  const size_t n_out =
      static_cast<size_t>(std::llround(static_cast<double>(in.size()) * to_rate / from_rate));
  std::vector<float> out(n_out);
  const double step = static_cast<double>(from_rate) / to_rate;
  for (size_t i = 0; i < n_out; ++i) {
    const double t = static_cast<double>(i) * step;
    const size_t j = std::min(static_cast<size_t>(t), in.size() - 1);
    const double frac = t - static_cast<double>(j);
    const float next = j + 1 < in.size() ? in[j + 1] : in[j];
    out[i] = static_cast<float>(in[j] + (next - in[j]) * frac);
  }
  return out;
}

Voicing audio_voicing(const AudioClip& clip, double skip_seconds) {
  Voicing v;
  if (clip.rate <= 0) return v;
  const auto skip = static_cast<size_t>(std::max(0.0, skip_seconds) * clip.rate);
  const auto size = static_cast<size_t>(0.04 * clip.rate);
  const size_t lag0 = std::max<size_t>(2, static_cast<size_t>(clip.rate / 400));
  const size_t lag1 = std::min<size_t>(size / 2, static_cast<size_t>(clip.rate / 70));
  if (size < 8 || lag1 < lag0 || skip >= clip.samples.size()) return v;
  std::vector<double> x(size), r(lag1 + 2, 0.0);  // r[lag]: correlation at lag
  double pitch_sum = 0;
  for (size_t start = skip; start + size <= clip.samples.size(); start += size) {
    ++v.frames;
    double mean = 0;
    for (size_t i = 0; i < size; ++i) mean += clip.samples[start + i];
    mean /= static_cast<double>(size);
    double energy = 0;
    for (size_t i = 0; i < size; ++i) {
      x[i] = clip.samples[start + i] - mean;
      energy += x[i] * x[i];
    }
    if (std::sqrt(energy / static_cast<double>(size)) < 0.01) continue;
    ++v.sounding;
    // x (size): r(lag) = sum x[i] x[i + lag] / sqrt(sum_head x^2 * sum_tail x^2), for the
    // pitch lags and one beyond each end, so that a peak can be told from a slope.
    for (size_t lag = lag0 - 1; lag <= lag1 + 1; ++lag) {
      double num = 0, head = 0, tail = 0;
      for (size_t i = 0; i + lag < size; ++i) {
        num += x[i] * x[i + lag];
        head += x[i] * x[i];
        tail += x[i + lag] * x[i + lag];
      }
      r[lag] = head > 0 && tail > 0 ? num / std::sqrt(head * tail) : 0.0;
    }
    // Only peaks count: low-passed noise correlates strongly at short lags too, but falls
    // steadily with the lag and has no peak.
    auto peak = [&](size_t lag) { return r[lag] > r[lag - 1] && r[lag] >= r[lag + 1]; };
    double best = 0;
    for (size_t lag = lag0; lag <= lag1; ++lag)
      if (peak(lag)) best = std::max(best, r[lag]);
    if (best > 0.5) {
      // The pitch period: the shortest peak within 10 % of the best (a periodic frame peaks
      // at every multiple of its period, often a little higher at one).
      size_t period = lag0;
      for (size_t lag = lag0; lag <= lag1; ++lag)
        if (peak(lag) && r[lag] >= 0.9 * best) {
          period = lag;
          break;
        }
      ++v.voiced;
      pitch_sum += static_cast<double>(clip.rate) / static_cast<double>(period);
    }
  }
  v.pitch_hz = v.voiced > 0 ? pitch_sum / static_cast<double>(v.voiced) : 0.0;
  return v;
}

}  // namespace attnscope
