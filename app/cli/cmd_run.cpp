// attnscope-cli generate and eval: prompts in (image, WAV or text), sampled outputs out
// (one grid image, or numbered WAV/text files), and bits per dim with optional log-probs.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "args.h"
#include "attnscope/atomic_file.h"
#include "attnscope/generate.h"
#include "attnscope/inspect.h"
#include "attnscope/train.h"
#include "commands.h"
#include "image_dataset.h"
#include "media.h"

namespace cli {

using namespace attnscope;

namespace {

const CommandSpec kGenerateSpec = {
    "generate",
    "generate --model FILE [--prompt IMAGE --keep-rows K | --prompt WAV --keep-seconds S | "
    "--prompt-text TEXT] [--temperature T] [--top-k K] [--top-p P] [--samples N] "
    "[--device cpu|cuda [--precision P]] --seed S --out OUT.png|OUT.wav|OUT.txt",
    "Samples a whole sequence from a model, token by token, optionally continuing a prompt.",
    {
        {"--model", "FILE", "the model file (required)"},
        {"--prompt", "FILE",
         "image models: an image (scaled to the model's size when it differs);"
         " audio models: a WAV (resampled to the model's rate, mu-law)"},
        {"--keep-rows", "K", "image prompt: rows kept exactly, the rest generated (default: H/2)"},
        {"--keep-seconds", "S",
         "WAV prompt: seconds kept (default: half the model's length, "
         "at most the prompt's)"},
        {"--prompt-text", "TEXT",
         "text models: the first bytes (UTF-8), truncated to the model's "
         "length"},
        {"--temperature", "T", "sampling temperature, 0 = greedy (default: 1)"},
        {"--top-k", "K", "keep the K likeliest tokens, 0 = all (default: 0)"},
        {"--top-p", "P", "keep the smallest set with this much mass, in (0, 1] (default: 1)"},
        {"--samples", "N", "how many samples, with seeds S, S+1, ... (default: 1)"},
        {"--seed", "S", "sampling seed; the same seed gives byte-identical output (required)"},
        {"--device", "D",
         "cpu or cuda: where the model runs; without a usable device (or for the Reformer, "
         "whose decode has no device kernel) cuda runs on the cpu and says why (default: cpu)"},
        {"--precision", "P", "cuda only: f32, tf32 or bf16 (default: f32)"},
        latents_flag(),
        latent_cache_flag(),
        {"--out", "FILE",
         "output: an image (.png, or any format Qt writes: .ppm, .bmp, ...) for "
         "image models, .wav for audio, .txt for text (required)"},
    },
    0,
    "Several samples: images go into ONE grid image of ceil(sqrt N) columns with a 2-pixel\n"
    "gap (black; transparent for RGBA); audio and text go into numbered files OUT-1.wav ...\n"
    "OUT-N.wav (OUT-1.txt ...). WAV output is 16-bit PCM mono at the model's rate. Progress\n"
    "(tokens done / total, tokens/s) is shown on stderr when it is a terminal. Ctrl-C cancels\n"
    "(exit 1); outputs appear only when complete. The same seed gives the same output on the same\n"
    "backend and precision; the cpu and cuda backends round differently, so their samples can\n"
    "part where two tokens are nearly equally likely."};

const CommandSpec kEvalSpec = {
    "eval",
    "eval --model FILE --input IMAGE|WAV|TEXTFILE|DIR [--dump-logprobs FILE.npy]",
    "Prints the model's bits per dim (mean -log2 P(token | tokens before)) on the input and the\n"
    "number of tokens N. Images must have the model's size; WAV files are resampled to the\n"
    "model's rate; audio and text longer than the model's length are cut to it.\n"
    "With a folder: every image, WAV or text file below it, read as attnscope-cli train reads\n"
    "data (images scaled to the model's size), each file one sequence; prints the mean bits/dim\n"
    "over the files, their count and the lowest and highest file's figure (progress on stderr,\n"
    "Ctrl-C cancels).",
    {
        {"--model", "FILE", "the model file (required)"},
        {"--input", "PATH",
         "an image, WAV or text file matching the model's modality, or a folder of them "
         "(required)"},
        {"--dump-logprobs", "FILE",
         "also write every position's 256 log-probabilities as a .npy "
         "float32 array of shape (N, 256)"},
        latents_flag(),
        latent_cache_flag(),
    },
    0,
    ""};

// Messages about what was done to an input, printed once the command has what it needs (so
// that an error stays the only line on stderr).
using Notes = std::vector<std::string>;
void print_notes(const Notes& notes) {
  for (const std::string& n : notes)
    if (!n.empty()) std::fprintf(stderr, "attnscope-cli: %s\n", n.c_str());
}

// The prompt tokens the flags ask for, checked against the model's modality.
Expected<std::vector<uint8_t>> prompt_tokens(const Args& a, const ModelConfig& cfg, Notes* notes) {
  const Modality& m = cfg.modality;
  const int64_t n = cfg.seq_len();
  const bool image = m.kind == ModalityKind::kImage, audio = m.kind == ModalityKind::kAudio;
  if (a.has("--keep-rows") && !image)
    return invalid_argument("--keep-rows is for image models; this model is " + m.describe());
  if (a.has("--keep-seconds") && !audio)
    return invalid_argument("--keep-seconds is for audio models; this model is " + m.describe());
  if (a.has("--prompt-text") && m.kind != ModalityKind::kText)
    return invalid_argument("--prompt-text is for text models; this model is " + m.describe());
  if (a.has("--prompt") && m.kind == ModalityKind::kText)
    return invalid_argument("--prompt takes an image or WAV; text models use --prompt-text");
  if (!a.has("--prompt") && (a.has("--keep-rows") || a.has("--keep-seconds")))
    return invalid_argument("--keep-rows and --keep-seconds need --prompt");

  if (m.kind == ModalityKind::kText) {
    std::string text = a.text("--prompt-text", "");
    if (static_cast<int64_t>(text.size()) > n) {
      notes->push_back("prompt-text truncated from " + std::to_string(text.size()) + " to " +
                       std::to_string(n) + " bytes (the model's length)");
      text.resize(static_cast<size_t>(n));
    }
    return std::vector<uint8_t>(text.begin(), text.end());
  }
  if (!a.has("--prompt")) return std::vector<uint8_t>{};
  const std::string path = a.text("--prompt", "");
  std::string msg;
  if (image) {
    auto keep = a.integer("--keep-rows", m.height / 2, 0, m.height);
    if (!keep) return keep.status();
    auto tokens = image_read_tokens(path, m, /*allow_scale=*/true, &msg);
    if (!tokens) return tokens.status();
    notes->push_back(msg);
    tokens->resize(static_cast<size_t>(*keep) * static_cast<size_t>(m.width) *
                   static_cast<size_t>(m.channels));
    return tokens;
  }
  auto tokens = audio_read_tokens(path, m, &msg);
  if (!tokens) return tokens.status();
  notes->push_back(msg);
  const double prompt_seconds = static_cast<double>(tokens->size()) / m.rate;
  double keep = std::min(m.seconds / 2, prompt_seconds);
  if (a.has("--keep-seconds")) {
    auto s = a.number("--keep-seconds", 0.0, 0.0, m.seconds);
    if (!s) return s.status();
    if (*s > prompt_seconds + 0.5 / m.rate) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "--keep-seconds %g is longer than the prompt (%.3f s)", *s,
                    prompt_seconds);
      return invalid_argument(buf);
    }
    keep = *s;
  }
  const int64_t kept =
      std::min<int64_t>({std::llround(keep * m.rate), static_cast<int64_t>(tokens->size()), n});
  tokens->resize(static_cast<size_t>(kept));
  return tokens;
}

// Refuses an output suffix that does not fit the model's modality.
Status check_output_kind(const std::string& out, const Modality& m) {
  const std::string suffix = file_suffix(out);
  switch (m.kind) {
    case ModalityKind::kImage:
      if (!image_suffix_writable(suffix))
        return invalid_argument("--out '" + out +
                                "': image models write an image file (.png, "
                                ".ppm, .bmp, ...), not '." +
                                suffix + "'");
      return image_format_for(m).status();
    case ModalityKind::kAudio:
      if (suffix != "wav")
        return invalid_argument("--out '" + out + "': audio models write a .wav file");
      return Status::ok();
    case ModalityKind::kText:
      if (suffix != "txt")
        return invalid_argument("--out '" + out + "': text models write a .txt file");
      return Status::ok();
  }
  return Status::ok();
}

}  // namespace

Status cmd_generate(const Argv& argv, const Context& ctx) {
  auto args = Args::parse(kGenerateSpec, argv);
  if (!args) return args.status();
  if (args->help()) {
    std::fputs(command_help(kGenerateSpec).c_str(), stdout);
    return Status::ok();
  }
  auto model_path = args->required("--model");
  if (!model_path) return model_path.status();
  auto out = args->required("--out");
  if (!out) return out.status();
  if (!args->has("--seed")) return invalid_argument("missing required option --seed");
  auto seed = args->integer("--seed", 0, 0, INT64_MAX);
  if (!seed) return seed.status();
  auto samples = args->integer("--samples", 1, 1, 1024);
  if (!samples) return samples.status();
  SamplingParams sp;
  auto temperature = args->number("--temperature", 1.0, 0.0, 100.0);
  if (!temperature) return temperature.status();
  auto top_k = args->integer("--top-k", 0, 0, kVocab);
  if (!top_k) return top_k.status();
  auto top_p = args->number("--top-p", 1.0, 0.0, 1.0);
  if (!top_p) return top_p.status();
  sp.temperature = static_cast<float>(*temperature);
  sp.top_k = static_cast<int>(*top_k);
  sp.top_p = static_cast<float>(*top_p);
  ATTN_RETURN_IF_ERROR(sampling_validate(sp));
  ATTN_RETURN_IF_ERROR(check_output_folder(*out));
  auto device = device_from_args(*args);
  if (!device) return device.status();

  std::string backend_note;
  auto model = load_model_on(*model_path, *device, ModelUse::kGenerate, &backend_note, &*args);
  if (!model) return model.status();
  if (device->cuda) std::fprintf(stderr, "%s\n", backend_note.c_str());
  const ModelConfig& cfg = (*model)->config();
  ATTN_RETURN_IF_ERROR(check_output_kind(*out, cfg.modality));
  Notes notes;
  auto prompt = prompt_tokens(*args, cfg, &notes);
  if (!prompt) return prompt.status();
  print_notes(notes);

  const int64_t n = cfg.seq_len();
  std::vector<std::vector<uint8_t>> outputs;
  for (int64_t s = 0; s < *samples; ++s) {
    GenerateRequest req;
    req.prompt = *prompt;
    req.sampling = sp;
    req.sampling.seed = static_cast<uint64_t>(*seed) + static_cast<uint64_t>(s);
    req.cancel = ctx.cancel;
    const auto start = std::chrono::steady_clock::now();
    if (ctx.progress)
      req.on_token = [&](int64_t pos, uint8_t, const float*) {
        if ((pos + 1) % 64 != 0 && pos + 1 != n) return;
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "\rsample %lld/%lld: %lld/%lld tokens, %.1f tokens/s ",
                     static_cast<long long>(s + 1), static_cast<long long>(*samples),
                     static_cast<long long>(pos + 1), static_cast<long long>(n),
                     secs > 0 ? (pos + 1) / secs : 0.0);
        if (pos + 1 == n) std::fputc('\n', stderr);
      };
    auto tokens = generate(**model, req);
    if (!tokens) {
      if (ctx.progress) std::fputc('\n', stderr);
      const Status& st = tokens.status();
      return st.code() == StatusCode::kInvalidArgument || st.code() == StatusCode::kCancelled
                 ? st
                 : internal_error(st.message());
    }
    outputs.push_back(std::move(*tokens));
  }

  AtomicFileSet files;
  std::vector<std::string> written;
  if (cfg.modality.kind == ModalityKind::kImage) {
    auto bytes = image_encode_grid(outputs, cfg.modality, *out);
    if (!bytes) return bytes.status();
    ATTN_RETURN_IF_ERROR(files.add(*out, *bytes));
    written.push_back(*out);
  } else {
    for (size_t s = 0; s < outputs.size(); ++s) {
      const std::string path =
          outputs.size() == 1 ? *out : numbered_path(*out, static_cast<int>(s) + 1);
      const std::vector<uint8_t> bytes = cfg.modality.kind == ModalityKind::kAudio
                                             ? audio_encode_tokens(outputs[s], cfg.modality)
                                             : outputs[s];
      ATTN_RETURN_IF_ERROR(files.add(path, bytes));
      written.push_back(path);
    }
  }
  if (ctx.cancel && ctx.cancel->load()) return cancelled("generation cancelled");
  ATTN_RETURN_IF_ERROR(files.commit());
  for (const std::string& path : written) std::printf("wrote %s\n", path.c_str());
  return Status::ok();
}

// eval --input DIR: the mean bits/dim of every sequence the data reader finds below dir.
Status eval_folder(const Model& model, const std::string& dir, const Context& ctx) {
  DataOptions dopt;
  dopt.image_decoder = image_dataset_decode;  // as attnscope-cli train reads images
  auto data = dataset_load(dir, model.config().modality, dopt);
  if (!data) return invalid_argument(data.status().message());
  std::vector<const std::vector<uint8_t>*> seqs;
  std::vector<const std::string*> names;
  for (size_t i = 0; i < data->train.size(); ++i)
    seqs.push_back(&data->train[i]), names.push_back(&data->train_names[i]);
  for (size_t i = 0; i < data->heldout.size(); ++i)
    seqs.push_back(&data->heldout[i]), names.push_back(&data->heldout_names[i]);
  if (seqs.empty()) return invalid_argument(dir + ": no data to evaluate");
  double sum = 0, lo = 1e300, hi = -1;
  std::string lo_name, hi_name;
  const bool tty = isatty(fileno(stderr));
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto& x = *seqs[i];
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(x.size()), model.config().seq_len());
    Tensor lp;
    Status st = model_log_probs(model, x.data(), n, &lp, ctx.cancel);
    if (!st) return st.code() == StatusCode::kCancelled ? st : internal_error(st.message());
    double nats = 0;
    for (int64_t p = 0; p < n; ++p) nats -= lp.data()[p * kVocab + x[static_cast<size_t>(p)]];
    const double bits = nats / static_cast<double>(n) / std::log(2.0);
    sum += bits;
    if (bits < lo) lo = bits, lo_name = *names[i];
    if (bits > hi) hi = bits, hi_name = *names[i];
    if (tty) std::fprintf(stderr, "\r%zu / %zu files", i + 1, seqs.size());
  }
  if (tty) std::fputc('\n', stderr);
  std::printf("bits/dim: %.4f (mean over %zu files)\n", sum / static_cast<double>(seqs.size()),
              seqs.size());
  std::printf("lowest: %.4f %s\nhighest: %.4f %s\n", lo, lo_name.c_str(), hi, hi_name.c_str());
  return Status::ok();
}

Status cmd_eval(const Argv& argv, const Context& ctx) {
  auto args = Args::parse(kEvalSpec, argv);
  if (!args) return args.status();
  if (args->help()) {
    std::fputs(command_help(kEvalSpec).c_str(), stdout);
    return Status::ok();
  }
  auto model_path = args->required("--model");
  if (!model_path) return model_path.status();
  auto input = args->required("--input");
  if (!input) return input.status();
  const std::string dump = args->text("--dump-logprobs", "");
  if (args->has("--dump-logprobs")) {
    if (dump.empty()) return invalid_argument("--dump-logprobs needs a file name");
    ATTN_RETURN_IF_ERROR(check_output_folder(dump));
  }
  auto model = load_model(*model_path, &*args);
  if (!model) return model.status();
  const ModelConfig& cfg = (*model)->config();
  ATTN_RETURN_IF_ERROR(memory_check_inference(cfg, "evaluating", /*decode=*/false));
  const int64_t n_max = cfg.seq_len();
  if (std::filesystem::is_directory(*input)) {
    if (!dump.empty())
      return invalid_argument("--dump-logprobs takes one input file, not a folder");
    return eval_folder(**model, *input, ctx);
  }

  std::string msg;
  Expected<std::vector<uint8_t>> tokens = std::vector<uint8_t>{};
  switch (cfg.modality.kind) {
    case ModalityKind::kImage:
      tokens = image_read_tokens(*input, cfg.modality, /*allow_scale=*/false, &msg);
      break;
    case ModalityKind::kAudio:
      tokens = audio_read_tokens(*input, cfg.modality, &msg);
      break;
    case ModalityKind::kText:
      tokens = read_file_bytes(*input, size_t{1} << 30);
      break;
  }
  if (!tokens) return tokens.status();
  Notes notes = {msg};
  if (tokens->empty()) return invalid_argument(*input + ": no tokens to evaluate (empty input)");
  if (static_cast<int64_t>(tokens->size()) > n_max) {
    notes.push_back("input cut from " + std::to_string(tokens->size()) + " to " +
                    std::to_string(n_max) + " tokens (the model's length)");
    tokens->resize(static_cast<size_t>(n_max));
  }
  print_notes(notes);
  const int64_t n = static_cast<int64_t>(tokens->size());
  Tensor lp;
  Status st = model_log_probs(**model, tokens->data(), n, &lp, ctx.cancel);
  if (!st) return st.code() == StatusCode::kCancelled ? st : internal_error(st.message());
  double nats = 0;
  for (int64_t p = 0; p < n; ++p) nats -= lp.data()[p * kVocab + (*tokens)[static_cast<size_t>(p)]];
  std::printf("bits/dim: %.4f\n", nats / static_cast<double>(n) / std::log(2.0));
  std::printf("N: %lld\n", static_cast<long long>(n));
  if (!dump.empty()) {
    AtomicFileSet files;
    ATTN_RETURN_IF_ERROR(files.add(dump, npy_encode_f32(lp.data(), n, kVocab)));
    ATTN_RETURN_IF_ERROR(files.commit());
    std::printf("wrote %s (%lld x 256 float32)\n", dump.c_str(), static_cast<long long>(n));
  }
  return Status::ok();
}

}  // namespace cli
