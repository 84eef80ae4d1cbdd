#!/usr/bin/env python3
"""Share of voiced frames in WAV files: a number for "does this sound like speech".

Speech alternates voiced stretches (a periodic waveform: the pitch and its harmonics, the
stripes of a spectrogram) with silence and noise-like consonants; broadband noise has no
periodicity at all. A 40 ms frame counts as voiced when it is not silent (RMS above 1/100
of full scale) and its normalised autocorrelation has a peak (a local maximum) above 0.5 at a lag in the
pitch range 70-400 Hz (the engine's audio_voicing, which the tests use, is the same measure).
Prints, per file, the voiced share of all frames and of the non-silent
frames, the mean pitch of the voiced ones and their harmonics-to-noise ratio (HNR, Boersma's
10 log10(r / (1 - r)) of the autocorrelation peak r, averaged over the voiced frames): a
clean tone reads 20 dB and more, a tone under hiss 5-10 dB.

usage: voicing.py [--skip SECONDS] FILE.wav...   (--skip: ignore the first seconds, the prompt)
Standard library only (wave, struct, math), 16-bit PCM mono.
"""
import math
import struct
import sys
import wave


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            sys.exit(f"{path}: need 16-bit PCM mono")
        rate = w.getframerate()
        data = w.readframes(w.getnframes())
    return rate, [v / 32768.0 for v in struct.unpack(f"<{len(data) // 2}h", data)]


def frame_pitch(x, rate):
    """(rms, best normalised autocorrelation, its frequency in Hz) of one frame."""
    n = len(x)
    mean = sum(x) / n
    x = [v - mean for v in x]
    energy = sum(v * v for v in x)
    rms = math.sqrt(energy / n)
    if energy <= 0:
        return rms, 0.0, 0.0
    lo, hi = max(2, rate // 400), min(n // 2, rate // 70)
    r = {}
    for lag in range(lo - 1, hi + 2):  # one beyond each end, to tell a peak from a slope
        a, b = x[:-lag], x[lag:]
        num = sum(p * q for p, q in zip(a, b))
        den = math.sqrt(sum(p * p for p in a) * sum(q * q for q in b))
        r[lag] = num / den if den > 0 else 0.0
    # Only peaks count (low-passed noise correlates at short lags but has no peak); the period
    # is the shortest peak within 10 % of the best (no octave errors).
    peaks = [lag for lag in range(lo, hi + 1) if r[lag] > r[lag - 1] and r[lag] >= r[lag + 1]]
    best = max((r[lag] for lag in peaks), default=0.0)
    period = next((lag for lag in peaks if r[lag] >= 0.9 * best), 0)
    return rms, best, (rate / period if period and best > 0 else 0.0)


def main(argv):
    skip = 0.0
    if len(argv) > 2 and argv[1] == "--skip":
        skip = float(argv[2])
        argv = argv[2:]
    if len(argv) < 2:
        sys.exit(__doc__)
    print(f"{'file':40s} {'frames':>6s} {'voiced':>7s} {'voiced of sound':>16s} {'pitch Hz':>9s} "
          f"{'HNR dB':>7s}")
    for path in argv[1:]:
        rate, x = read_wav(path)
        x = x[int(skip * rate):]
        size = int(0.04 * rate)
        frames = voiced = sounding = 0
        pitches, hnrs = [], []
        for start in range(0, len(x) - size + 1, size):
            rms, r, f0 = frame_pitch(x[start:start + size], rate)
            frames += 1
            if rms < 0.01:
                continue
            sounding += 1
            if r > 0.5:
                voiced += 1
                pitches.append(f0)
                r = min(r, 0.9999)
                hnrs.append(10 * math.log10(r / (1 - r)))
        share = voiced / frames if frames else 0.0
        of_sound = voiced / sounding if sounding else 0.0
        pitch = sum(pitches) / len(pitches) if pitches else 0.0
        hnr = sum(hnrs) / len(hnrs) if hnrs else 0.0
        print(f"{path[-40:]:40s} {frames:6d} {share:7.2f} {of_sound:16.2f} {pitch:9.0f} "
              f"{hnr:7.1f}")


if __name__ == "__main__":
    main(sys.argv)
