// Audio as tokens: 8-bit mu-law (mu = 255, the WaveNet convention), WAV files (reading RIFF
// PCM 8/16/24/32-bit and float32, any channel count mixed to mono; writing 16-bit PCM mono
// atomically) and linear resampling to a model's rate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/status.h"

namespace attnscope {

constexpr int kMuLaw = 255;

// f(x) = sign(x) ln(1 + mu|x|) / ln(1 + mu), q = floor((f + 1) / 2 * 255 + 0.5); x is clipped
// to [-1, 1] and NaN encodes as 0.0. Codes: -1 -> 0, 0 -> 128, 1 -> 255.
uint8_t audio_mulaw_encode(float x);
// The inverse of f at the code's centre: f = q / 255 * 2 - 1, x = sign(f) ((1 + mu)^|f| - 1) / mu.
float audio_mulaw_decode(uint8_t q);
std::vector<uint8_t> audio_mulaw_encode(const std::vector<float>& samples);
std::vector<float> audio_mulaw_decode(const std::vector<uint8_t>& codes);

// A mono clip; samples are in [-1, 1].
struct AudioClip {
  int rate = 16000;
  std::vector<float> samples;
  double seconds() const { return rate > 0 ? static_cast<double>(samples.size()) / rate : 0.0; }
};

// Parses a whole WAV file held in memory. name goes into messages. Refuses (kInvalidArgument)
// anything truncated, inconsistent or unsupported: every chunk size is checked against the
// bytes present.
Expected<AudioClip> audio_wav_parse(const uint8_t* data, size_t size, const std::string& name);
// kNotFound when path does not exist; otherwise as audio_wav_parse.
Expected<AudioClip> audio_wav_read(const std::string& path);
// The bytes of a 16-bit PCM mono WAV of clip (samples clipped to [-1, 1]).
std::vector<uint8_t> audio_wav_encode(const AudioClip& clip);
// Writes audio_wav_encode(clip) to a temporary file beside path, then renames it over path:
// path is either untouched or complete.
Status audio_wav_write(const std::string& path, const AudioClip& clip);

// Linear interpolation from from_rate to to_rate; the result has round(n * to / from)
// samples. Returns the input unchanged when the rates are equal.
std::vector<float> audio_resample_linear(const std::vector<float>& in, int from_rate, int to_rate);

// How much of a clip is voiced: the number behind "sounds like speech". Speech alternates
// voiced stretches (a periodic waveform: a pitch and its harmonics) with silence and noise-like
// consonants; noise has no periodicity. The clip is cut into frames of 40 ms; a frame sounds
// when its RMS (after removing its mean) is at least 1/100 of full scale, and is voiced when it
// sounds and its normalised autocorrelation has a peak (a local maximum, not the slope that
// low-passed noise shows at short lags) above 0.5 at a lag of 70-400 Hz.
struct Voicing {
  int64_t frames = 0, sounding = 0, voiced = 0;
  // Mean pitch of the voiced frames (0 when none); a frame's period is its shortest peak
  // within 10 % of its best.
  double pitch_hz = 0;
  double share() const { return frames > 0 ? static_cast<double>(voiced) / frames : 0.0; }
};
Voicing audio_voicing(const AudioClip& clip, double skip_seconds = 0);

}  // namespace attnscope
