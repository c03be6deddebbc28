#include "models/char_gpt/char_gpt.h"

#include <cmath>
#include <map>
#include <random>

namespace focus::models::char_gpt {

namespace {

// "U+2014" for a character (one UTF-8 code point).
std::string code_point(const std::string& ch) {
  const auto* s = reinterpret_cast<const unsigned char*>(ch.data());
  uint32_t cp = 0;
  if (ch.size() == 1) cp = s[0];
  else if (ch.size() == 2) cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
  else if (ch.size() == 3) cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
  else if (ch.size() == 4) cp = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
  return fmt::format("U+{:04X}", cp);
}

// A character as it can be shown in an error: control characters escaped.
std::string printable(const std::string& ch) {
  if (ch == "\n") return "\\n";
  if (ch == "\t") return "\\t";
  if (ch == "\r") return "\\r";
  if (ch.size() == 1 && (static_cast<unsigned char>(ch[0]) < 0x20 || ch[0] == 0x7F))
    return fmt::format("\\x{:02x}", static_cast<unsigned char>(ch[0]));
  return ch;
}

}  // namespace

Corpus make_corpus(std::string_view text, double train_frac) {
  FOCUS_CHECK(train_frac > 0.0 && train_frac < 1.0, "[char_gpt] train_frac must be in (0, 1), got {}", train_frac);
  const std::vector<std::string> chars = data::split_utf8(text);
  FOCUS_CHECK(!chars.empty(), "[char_gpt] the text is empty");
  Corpus c{data::Vocab::build(chars, 1, -1, /*specials=*/false), Tensor(), Tensor()};
  const std::vector<int64_t> ids = c.vocab.encode(chars);
  const auto n = static_cast<int64_t>(ids.size());
  const auto n_train = static_cast<int64_t>(std::floor(static_cast<double>(n) * train_frac));
  FOCUS_CHECK(n_train >= 2 && n - n_train >= 2,
              "[char_gpt] a text of {} characters is too short to split {} / {}", n, n_train, n - n_train);
  const Tensor all = tensor(ids, TensorOptions(kInt64));
  c.train = all.narrow(0, 0, n_train).contiguous();
  c.valid = all.narrow(0, n_train, n - n_train).contiguous();
  return c;
}

std::vector<int64_t> encode(const data::Vocab& vocab, std::string_view text, const std::string& what) {
  const std::vector<std::string> chars = data::split_utf8(text);
  std::vector<int64_t> ids;
  ids.reserve(chars.size());
  for (size_t i = 0; i < chars.size(); ++i) {
    FOCUS_CHECK(vocab.contains(chars[i]),
                "{} the character '{}' ({}) at position {} is not in the model's vocabulary of {} characters", what,
                printable(chars[i]), code_point(chars[i]), i, vocab.size());
    ids.push_back(vocab.id(chars[i]));
  }
  return ids;
}

std::string decode(const data::Vocab& vocab, const std::vector<int64_t>& ids) {
  std::string out;
  for (int64_t id : ids) out += vocab.token(id);
  return out;
}

std::pair<Tensor, Tensor> get_batch(const Tensor& data, int64_t batch_size, int64_t block_size, Generator& gen) {
  FOCUS_CHECK(data.dim() == 1 && data.dtype() == kInt64, "[char_gpt] get_batch expects [N] int64 ids, got {} {}",
              data.shape(), data.dtype());
  FOCUS_CHECK(batch_size >= 1 && block_size >= 1, "[char_gpt] batch_size and block_size must be positive, got {} and {}",
              batch_size, block_size);
  FOCUS_CHECK(data.size(0) > block_size, "[char_gpt] a split of {} characters is too short for block_size {}",
              data.size(0), block_size);
  const std::vector<int64_t> starts = randint(0, data.size(0) - block_size, {batch_size}, {}, &gen).to_vector<int64_t>();
  std::vector<Tensor> xs, ys;
  xs.reserve(starts.size());
  ys.reserve(starts.size());
  for (int64_t s : starts) {
    xs.push_back(data.narrow(0, s, block_size));
    ys.push_back(data.narrow(0, s + 1, block_size));
  }
  NoGradGuard no_grad;
  return {stack(xs, 0), stack(ys, 0)};
}

namespace {

// The device of the model's weights: evaluation batches go there.
Device device_of(const GPT& model) {
  const std::vector<Tensor> params = model.parameters();
  return params.empty() ? kCPU : params.front().device();
}

// Runs fn with the model in eval mode and no graph, restoring its mode afterwards.
template <class Fn>
double evaluating(const GPT& model, Fn fn) {
  auto& m = const_cast<GPT&>(model);  // train()/eval() only flip the mode flag
  const bool was_training = m.is_training();
  m.eval();
  NoGradGuard no_grad;
  double result = 0;
  try {
    result = fn();
  } catch (...) {
    if (was_training) m.train();
    throw;
  }
  if (was_training) m.train();
  return result;
}

}  // namespace

double mean_loss(const GPT& model, const std::vector<std::pair<Tensor, Tensor>>& batches) {
  FOCUS_CHECK(!batches.empty(), "[char_gpt] mean_loss needs at least one batch");
  const Device device = device_of(model);
  return evaluating(model, [&] {
    // Summed on the device in float64 (as host doubles would add the float losses), read once.
    Tensor total = zeros({}, TensorOptions(kFloat64).device(device));
    for (const auto& [x, y] : batches)
      total = total + GPT::loss(model.forward(x.to(device)), y.to(device)).to(kFloat64);
    return total.item<double>() / static_cast<double>(batches.size());
  });
}

double split_loss(const GPT& model, const Tensor& data, int64_t batch_size) {
  FOCUS_CHECK(data.dim() == 1 && data.dtype() == kInt64 && data.size(0) >= 2,
              "[char_gpt] split_loss expects [N] int64 ids with N >= 2, got {} {}", data.shape(), data.dtype());
  FOCUS_CHECK(batch_size >= 1, "[char_gpt] batch_size must be positive, got {}", batch_size);
  const int64_t T = model.config().block_size_;
  const int64_t n_pred = data.size(0) - 1;  // characters predicted
  const int64_t n_full = n_pred / T, rest = n_pred % T;
  const Device device = device_of(model);
  return evaluating(model, [&] {
    // Summed nats, on the device in float64 (the host arithmetic it replaces: double(loss) * n
    // added up), read once at the end.
    Tensor total = zeros({}, TensorOptions(kFloat64).device(device));
    for (int64_t w = 0; w < n_full; w += batch_size) {
      const int64_t b = std::min(batch_size, n_full - w);
      const Tensor x = data.narrow(0, w * T, b * T).view({b, T}).to(device);
      const Tensor y = data.narrow(0, w * T + 1, b * T).view({b, T}).to(device);
      total = total + GPT::loss(model.forward(x), y).to(kFloat64) * static_cast<double>(b * T);
    }
    if (rest > 0) {
      const Tensor x = data.narrow(0, n_full * T, rest).view({1, rest}).to(device);
      const Tensor y = data.narrow(0, n_full * T + 1, rest).view({1, rest}).to(device);
      total = total + GPT::loss(model.forward(x), y).to(kFloat64) * static_cast<double>(rest);
    }
    return total.item<double>() / static_cast<double>(n_pred);
  });
}

double bits_per_char(double nats) { return nats / std::log(2.0); }

std::string synthetic_text(int64_t chars, uint64_t seed) {
  FOCUS_CHECK(chars >= 1, "[char_gpt] synthetic_text needs chars >= 1, got {}", chars);
  static const std::vector<std::string> subjects{"the whale", "ahab", "the sea", "ishmael", "the ship", "queequeg"};
  static const std::vector<std::string> verbs{"sails", "dives", "waits", "rises", "turns", "sleeps"};
  static const std::vector<std::string> tails{"at dawn", "in the fog", "all night", "to the north", "again",
                                              "slowly"};
  std::mt19937_64 rng(seed);
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  std::string out;
  while (static_cast<int64_t>(out.size()) < chars) {
    std::string s = pick(subjects);
    s[0] = static_cast<char>(s[0] - 'a' + 'A');
    s += " " + pick(verbs) + " " + pick(tails);
    switch (rng() % 4) {
      case 0: s += "—and " + pick(subjects) + "’s " + pick(verbs).substr(0, 4) + " too."; break;
      case 1: s += "!"; break;
      default: s += "."; break;
    }
    out += s + (rng() % 5 == 0 ? "\n" : " ");
  }
  // Cut at a character boundary (never inside a multi-byte character).
  size_t end = static_cast<size_t>(chars);
  while (end < out.size() && (static_cast<unsigned char>(out[end]) & 0xC0u) == 0x80u) ++end;
  out.resize(end);
  return out;
}

}  // namespace focus::models::char_gpt
