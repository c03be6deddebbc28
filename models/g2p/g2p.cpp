#include "models/g2p/g2p.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace focus::models::g2p {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

Tensor activate(const std::string& a, const Tensor& x) { return a == "relu" ? relu(x) : gelu(x); }

// [B, L, E] -> [B, H, L, hd] (a view)
Tensor split_heads(const Tensor& x, int64_t H) {
  const int64_t B = x.size(0), L = x.size(1), E = x.size(2);
  return x.view({B, L, H, E / H}).transpose(1, 2);
}

// [B, H, L, hd] -> [B, L, E]
Tensor merge_heads(const Tensor& y) {
  const int64_t B = y.size(0), H = y.size(1), L = y.size(2), hd = y.size(3);
  return y.transpose(1, 2).reshape({B, L, H * hd});
}

void check_options(const G2POptions& o) {
  FOCUS_CHECK(o.src_vocab_size_ > 0 && o.tgt_vocab_size_ > 0, "[G2PTransformer] vocabulary sizes must be positive, got {} and {}",
              o.src_vocab_size_, o.tgt_vocab_size_);
  FOCUS_CHECK(o.d_model_ > 0 && o.nhead_ > 0 && o.d_model_ % o.nhead_ == 0,
              "[G2PTransformer] d_model ({}) must be a positive multiple of nhead ({})", o.d_model_, o.nhead_);
  FOCUS_CHECK(o.num_encoder_layers_ >= 1 && o.num_decoder_layers_ >= 1,
              "[G2PTransformer] need at least one encoder and one decoder layer, got {} and {}", o.num_encoder_layers_,
              o.num_decoder_layers_);
  FOCUS_CHECK(o.dim_feedforward_ > 0, "[G2PTransformer] dim_feedforward must be positive, got {}", o.dim_feedforward_);
  FOCUS_CHECK(o.dropout_ >= 0.0 && o.dropout_ < 1.0, "[G2PTransformer] dropout must be in [0, 1), got {}", o.dropout_);
  FOCUS_CHECK(o.max_len_ >= 2, "[G2PTransformer] max_len must be at least 2, got {}", o.max_len_);
  FOCUS_CHECK(o.activation_ == "relu" || o.activation_ == "gelu", "[G2PTransformer] activation should be relu or gelu, not {}",
              o.activation_);
  for (int64_t id : {o.pad_id_, o.bos_id_, o.eos_id_})
    FOCUS_CHECK(id >= 0 && id < o.tgt_vocab_size_ && id < o.src_vocab_size_,
                "[G2PTransformer] special token id {} is outside the vocabularies ({} letters, {} phonemes)", id,
                o.src_vocab_size_, o.tgt_vocab_size_);
}

void check_tokens(const Tensor& t, const char* what, const char* op) {
  FOCUS_CHECK(t.defined() && t.dim() == 2 && t.dtype() == kInt64, "[{}] expected {} of shape [B, T] and dtype int64, got {} {}",
              op, what, t.defined() ? fmt::format("{}", t.shape()) : "undefined",
              t.defined() ? fmt::format("{}", t.dtype()) : "");
}

// Puts a module in eval mode for a scope and restores its mode afterwards.
class EvalScope {
 public:
  explicit EvalScope(nn::Module& m) : m_(m), was_training_(m.is_training()) { m_.eval(); }
  ~EvalScope() { m_.train(was_training_); }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  nn::Module& m_;
  bool was_training_;
};

bool banned(const G2POptions& o, int64_t id) { return id == o.pad_id_ || id == o.bos_id_ || id == o.unk_id_; }

}  // namespace

// ---- KVCache and DecoderState ---------------------------------------------------------------

void KVCache::append(const Tensor& k_new, const Tensor& v_new, int64_t reserve) {
  FOCUS_CHECK(k_new.dim() == 4 && v_new.dim() == 4 && k_new.size(0) == v_new.size(0) && k_new.size(1) == v_new.size(1) &&
                  k_new.size(2) == v_new.size(2),
              "[KVCache] expected keys and values [B, H, L, head_dim] of one B, H and L, got {} and {}", k_new.shape(),
              v_new.shape());
  const int64_t len = length(), n = k_new.size(0), L = k_new.size(2);
  if (len > 0)
    FOCUS_CHECK(n == k.size(0) && k_new.size(1) == k.size(1) && k_new.size(3) == k.size(3) && v_new.size(3) == v.size(3),
                "[KVCache] cannot append keys {} and values {} to a cache of keys {} and values {}", k_new.shape(),
                v_new.shape(), k.shape(), v.shape());
  // While autograd records (teacher forcing in training), the keys and values stay the
  // differentiable tensors: the first as they are, later ones joined by cat.
  const bool recording = GradMode::is_enabled() && (k_new.requires_grad() || v_new.requires_grad() ||
                                                    (len > 0 && (k.requires_grad() || v.requires_grad())));
  if (recording || (len == 0 && reserve <= L)) {
    k = len == 0 ? k_new : cat({k, k_new}, 2);
    v = len == 0 ? v_new : cat({v, v_new}, 2);
    k_store_ = v_store_ = Tensor();
    return;
  }
  // New buffers when these are full, or when a copy of this cache (sharing the buffers) has
  // written into them since our last write: positions < len are never overwritten.
  const bool shared_write = k_store_.defined() && (k_store_.version() != k_written_ || v_store_.version() != v_written_);
  if (!k_store_.defined() || len + L > k_store_.size(2) || shared_write) {
    const int64_t cap = std::max(reserve, 2 * (len + L));
    Shape ks = k_new.shape(), vs = v_new.shape();
    ks[2] = vs[2] = cap;
    Tensor kb = empty(ks, k_new.options()), vb = empty(vs, v_new.options());
    if (len > 0) {
      kb.narrow(2, 0, len).copy_(k);
      vb.narrow(2, 0, len).copy_(v);
    }
    k_store_ = kb;
    v_store_ = vb;
  }
  const Tensor kb = k_store_.narrow(0, 0, n), vb = v_store_.narrow(0, 0, n);
  kb.narrow(2, len, L).copy_(k_new);
  vb.narrow(2, len, L).copy_(v_new);
  k_written_ = k_store_.version();
  v_written_ = v_store_.version();
  k = kb.narrow(2, 0, len + L);
  v = vb.narrow(2, 0, len + L);
}

void KVCache::select_rows(const Tensor& index) {
  if (!k.defined()) return;
  const int64_t len = length(), n = index.numel();
  // The buffers keep their row count while the batch shrinks: what a decode frees is what
  // its next step takes.
  const int64_t rows = std::max(n, k_store_.defined() ? k_store_.size(0) : k.size(0));
  Shape ks = k.shape(), vs = v.shape();
  ks[0] = vs[0] = rows;
  ks[2] = vs[2] = capacity();
  Tensor kb = empty(ks, k.options()), vb = empty(vs, v.options());
  index_select_out(kb.narrow(0, 0, n).narrow(2, 0, len), k, 0, index);
  index_select_out(vb.narrow(0, 0, n).narrow(2, 0, len), v, 0, index);
  k_store_ = kb;
  v_store_ = vb;
  k_written_ = k_store_.version();
  v_written_ = v_store_.version();
  k = kb.narrow(0, 0, n).narrow(2, 0, len);
  v = vb.narrow(0, 0, n).narrow(2, 0, len);
}

int64_t DecoderState::rows() const {
  FOCUS_CHECK(!cross_attn.empty() && cross_attn[0].k.defined(), "[DecoderState] the state was not made by start()");
  return cross_attn[0].k.size(0) * group;
}

void DecoderState::reorder(const std::vector<int64_t>& rows_kept) {
  const int64_t n = rows(), G = group, kept = static_cast<int64_t>(rows_kept.size());
  FOCUS_CHECK(kept % G == 0, "[DecoderState] reorder: {} rows are not whole groups of {}", kept, G);
  std::vector<int64_t> sources;  // the old group of each new group
  bool identity = kept == n, same_sources = kept == n;
  for (int64_t i = 0; i < kept; ++i) {
    const int64_t r = rows_kept[static_cast<size_t>(i)];
    FOCUS_CHECK(r >= 0 && r < n, "[DecoderState] reorder: row {} is outside 0 .. {}", r, n - 1);
    identity = identity && r == i;
    if (i % G == 0) {
      sources.push_back(r / G);
      same_sources = same_sources && r / G == i / G;
    } else {
      FOCUS_CHECK(r / G == sources.back(),
                  "[DecoderState] reorder: new rows {} .. {} form one group and must come from one old group of {} "
                  "rows, but they take rows {} and {}",
                  i / G * G, i / G * G + G - 1, G, rows_kept[static_cast<size_t>(i / G * G)], r);
    }
  }
  const TensorOptions ids = TensorOptions(kInt64).device(cross_attn[0].k.device());
  if (!identity && length > 0) {
    const Tensor index = tensor(rows_kept, {kept}, ids);
    for (auto& c : self_attn) c.select_rows(index);
  }
  if (!same_sources) {
    const Tensor index = tensor(sources, {kept / G}, ids);
    for (auto& c : cross_attn) {
      c.k = index_select(c.k, 0, index);
      c.v = index_select(c.v, 0, index);
    }
    if (memory_mask.defined()) memory_mask = index_select(memory_mask, 0, index);
  }
}

// ---- G2PDecoderLayer ------------------------------------------------------------------------

G2PDecoderLayer::G2PDecoderLayer(const nn::TransformerLayerOptions& o) : nn::Module("G2PDecoderLayer"), options_(o) {
  FOCUS_CHECK(o.batch_first_ && o.norm_first_, "[G2PDecoderLayer] only batch_first, norm_first (pre-norm) layers are supported");
  FOCUS_CHECK(o.activation_ == "relu" || o.activation_ == "gelu", "[G2PDecoderLayer] activation should be relu or gelu, not {}",
              o.activation_);
  FOCUS_CHECK(o.d_model_ > 0 && o.nhead_ > 0 && o.d_model_ % o.nhead_ == 0,
              "[G2PDecoderLayer] d_model ({}) must be a positive multiple of nhead ({})", o.d_model_, o.nhead_);
  auto attention = [&] {
    return std::make_shared<nn::MultiheadAttention>(
        nn::MultiheadAttentionOptions(o.d_model_, o.nhead_).dropout(o.dropout_).bias(o.bias_).batch_first(true));
  };
  auto norm = [&] {
    return std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(o.d_model_).eps(o.layer_norm_eps_).bias(o.bias_));
  };
  self_attn_ = register_module("self_attn", attention());
  multihead_attn_ = register_module("multihead_attn", attention());
  linear1_ = register_module("linear1", std::make_shared<nn::Linear>(nn::LinearOptions(o.d_model_, o.dim_feedforward_).bias(o.bias_)));
  dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(o.dropout_));
  linear2_ = register_module("linear2", std::make_shared<nn::Linear>(nn::LinearOptions(o.dim_feedforward_, o.d_model_).bias(o.bias_)));
  norm1_ = register_module("norm1", norm());
  norm2_ = register_module("norm2", norm());
  norm3_ = register_module("norm3", norm());
  dropout1_ = register_module("dropout1", std::make_shared<nn::Dropout>(o.dropout_));
  dropout2_ = register_module("dropout2", std::make_shared<nn::Dropout>(o.dropout_));
  dropout3_ = register_module("dropout3", std::make_shared<nn::Dropout>(o.dropout_));
}

// Self-attention of the queries q [B, H, L, hd] (target positions offset .. offset + L - 1)
// over the keys and values kv (positions 0 .. offset + L - 1, the queries' own appended).
Tensor G2PDecoderLayer::self_block(const Tensor& q, const KVCache& kv, int64_t offset) const {
  const int64_t L = q.size(2), S = kv.k.size(2);
  AttentionOptions ao;
  ao.dropout_p(is_training() ? options_.dropout_ : 0.0);
  if (offset == 0 && L == S) {
    if (L > 1) ao.is_causal(true);
  } else if (L > 1) {
    // query i (position offset + i) may see keys 0 .. offset + i
    const Tensor cols = arange(S, TensorOptions(kInt64).device(q.device())).view({1, S});
    const Tensor rows = arange(offset, offset + L, 1, TensorOptions(kInt64).device(q.device())).view({L, 1});
    ao.attn_mask(le(cols, rows));
  }
  const Tensor y = std::get<0>(scaled_dot_product_attention(q, kv.k, kv.v, ao));
  return dropout1_->forward(self_attn_->out_proj()->forward(merge_heads(y)));
}

// Cross-attention of h [N, L, E] over kv [N / group, H, S, hd]: the group rows that share a
// source attend as group * L queries of one batch entry (no copy of the keys per row).
Tensor G2PDecoderLayer::cross_block(const Tensor& h, const KVCache& kv, const Tensor& memory_mask, Tensor* weights,
                                    int64_t group) const {
  const int64_t H = options_.nhead_, N = h.size(0), L = h.size(1), E = h.size(2), B = N / group;
  const Tensor hg = group == 1 ? h : h.reshape({B, group * L, E});
  const Tensor q = split_heads(multihead_attn_->in_projection(hg, 0, 1), H);
  AttentionOptions ao;
  ao.dropout_p(is_training() ? options_.dropout_ : 0.0).need_weights(weights != nullptr);
  if (memory_mask.defined()) ao.attn_mask(memory_mask);
  auto [y, w] = scaled_dot_product_attention(q, kv.k, kv.v, ao);
  if (weights) {
    // [B, H, group * L, S] -> [N, H, L, S]
    const int64_t S = w.size(3);
    *weights = group == 1 ? w : w.view({B, H, group, L, S}).permute({0, 2, 1, 3, 4}).reshape({N, H, L, S});
  }
  Tensor out = multihead_attn_->out_proj()->forward(merge_heads(y));  // [B, group * L, E]
  if (group > 1) out = out.view({N, L, E});
  return dropout2_->forward(out);
}

Tensor G2PDecoderLayer::ff_block(const Tensor& h) const {
  return dropout3_->forward(linear2_->forward(dropout_->forward(activate(options_.activation_, linear1_->forward(h)))));
}

KVCache G2PDecoderLayer::project_memory(const Tensor& memory) const {
  const int64_t E = options_.d_model_, H = options_.nhead_;
  FOCUS_CHECK(memory.dim() == 3 && memory.size(2) == E, "[G2PDecoderLayer] expected memory [B, S, {}], got {}", E,
              memory.shape());
  const Tensor kv = multihead_attn_->in_projection(memory, 1, 2);  // [B, S, 2E]
  KVCache c;
  c.k = split_heads(kv.narrow(2, 0, E), H);
  c.v = split_heads(kv.narrow(2, E, E), H);
  return c;
}

Tensor G2PDecoderLayer::forward(const Tensor& x, const Tensor& memory, const Tensor& memory_mask, Tensor* cross_weights) {
  KVCache self_cache;
  return forward_cached(x, self_cache, project_memory(memory), memory_mask, cross_weights);
}

Tensor G2PDecoderLayer::forward_cached(const Tensor& x, KVCache& self_cache, const KVCache& cross_cache,
                                       const Tensor& memory_mask, Tensor* cross_weights, int64_t group, int64_t reserve) {
  const int64_t E = options_.d_model_, H = options_.nhead_;
  FOCUS_CHECK(x.dim() == 3 && x.size(2) == E, "[G2PDecoderLayer] expected x [N, L, {}], got {}", E, x.shape());
  FOCUS_CHECK(group >= 1 && cross_cache.k.defined() && cross_cache.k.size(0) * group == x.size(0),
              "[G2PDecoderLayer] x has {} rows but the cross keys and values {} serve {} (groups of {})", x.size(0),
              cross_cache.k.defined() ? fmt::format("{}", cross_cache.k.shape()) : "(none)",
              cross_cache.k.defined() ? cross_cache.k.size(0) * group : 0, group);
  const int64_t offset = self_cache.length();
  if (offset > 0)
    FOCUS_CHECK(self_cache.k.size(0) == x.size(0), "[G2PDecoderLayer] the cache holds {} rows but x has {}",
                self_cache.k.size(0), x.size(0));
  // q, k and v in one product: [N, L, 3E]
  const Tensor qkv = self_attn_->in_projection(norm1_->forward(x), 0, 3);
  self_cache.append(split_heads(qkv.narrow(2, E, E), H), split_heads(qkv.narrow(2, 2 * E, E), H), reserve);
  // each residual add and the norm after it in one fused op (forward_add), as nn::TransformerDecoderLayer
  auto [h1, n2] = norm2_->forward_add(x, self_block(split_heads(qkv.narrow(2, 0, E), H), self_cache, offset));
  auto [h2, n3] = norm3_->forward_add(h1, cross_block(n2, cross_cache, memory_mask, cross_weights, group));
  return h2 + ff_block(n3);
}

// ---- G2PTransformer -------------------------------------------------------------------------

G2PTransformer::G2PTransformer(const G2POptions& o, Generator* gen) : nn::Module("G2PTransformer"), options_(o) {
  check_options(o);
  src_embed_ = register_module("src_embed", std::make_shared<nn::Embedding>(nn::EmbeddingOptions(o.src_vocab_size_, o.d_model_).padding_idx(o.pad_id_)));
  tgt_embed_ = register_module("tgt_embed", std::make_shared<nn::Embedding>(nn::EmbeddingOptions(o.tgt_vocab_size_, o.d_model_).padding_idx(o.pad_id_)));
  pos_ = register_module("pos", std::make_shared<nn::SinusoidalPositionalEncoding>(nn::PositionalOptions(o.d_model_, o.max_len_)));
  embed_dropout_ = register_module("embed_dropout", std::make_shared<nn::Dropout>(o.dropout_));
  const auto layer_options = nn::TransformerLayerOptions(o.d_model_, o.nhead_)
                                 .dim_feedforward(o.dim_feedforward_)
                                 .dropout(o.dropout_)
                                 .activation(o.activation_)
                                 .batch_first(true)
                                 .norm_first(true);
  encoder_ = register_module(
      "encoder", std::make_shared<nn::TransformerEncoder>(std::make_shared<nn::TransformerEncoderLayer>(layer_options),
                                                          o.num_encoder_layers_,
                                                          std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(o.d_model_))));
  // "decoder.layers.<i>", as nn::Transformer's decoder
  decoder_ = register_module("decoder", std::make_shared<nn::Module>("G2PDecoder"));
  auto list = decoder_->register_module("layers", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < o.num_decoder_layers_; ++i) {
    layers_.push_back(std::make_shared<G2PDecoderLayer>(layer_options));
    list->push_back(layers_.back());
  }
  decoder_norm_ = register_module("decoder_norm", std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(o.d_model_)));
  generator_ = register_module("generator", std::make_shared<nn::Linear>(o.d_model_, o.tgt_vocab_size_));
  // Embeddings N(0, E^-1/2) (so scaled by sqrt(E) they are N(0, 1), the size of the
  // positions); every other matrix xavier_uniform_ (the encoder layers start as copies).
  for (const auto& [name, p] : named_parameters()) {
    if (name == "src_embed.weight" || name == "tgt_embed.weight") {
      nn::init::normal_(p, 0.0, 1.0 / std::sqrt(static_cast<double>(o.d_model_)), gen);
      NoGradGuard no_grad;
      p.select(0, o.pad_id_).zero_();
    } else if (p.dim() > 1) {
      nn::init::xavier_uniform_(p, 1.0, gen);
    }
  }
}

namespace {

// Whether any position of pad [B, S] bool is padding: read on the host, since it decides
// whether attention gets a mask at all (a full batch of equal lengths needs none).
bool any_padding(const Tensor& pad) { return pad.to(kInt64).sum().item<int64_t>() > 0; }

Tensor memory_mask_of(const Tensor& pad, bool any_pad) {
  return any_pad ? logical_not(pad).view({pad.size(0), 1, 1, pad.size(1)}) : Tensor();
}

}  // namespace

Device G2PTransformer::device() const { return generator_->weight().device(); }

Tensor G2PTransformer::memory_mask(const Tensor& src) const {
  check_tokens(src, "src", "G2PTransformer");
  const Tensor pad = eq(src, Scalar(options_.pad_id_));
  return memory_mask_of(pad, any_padding(pad));
}

Tensor G2PTransformer::encode(const Tensor& src) const {
  check_tokens(src, "src", "G2PTransformer");
  const Tensor pad = eq(src, Scalar(options_.pad_id_));
  return encode(src, pad, any_padding(pad));
}

Tensor G2PTransformer::encode(const Tensor& src, const Tensor& pad, bool any_pad) const {
  FOCUS_CHECK(src.size(1) >= 1 && src.size(1) <= options_.max_len_,
              "[G2PTransformer] source length {} is outside 1 .. max_len ({})", src.size(1), options_.max_len_);
  const double scale = std::sqrt(static_cast<double>(options_.d_model_));
  const Tensor x = embed_dropout_->forward(pos_->forward(src_embed_->forward(src) * scale));
  return encoder_->forward(x, Tensor(), any_pad ? pad : Tensor());
}

Tensor G2PTransformer::embed_target(const Tensor& tokens, int64_t offset) const {
  check_tokens(tokens, "target tokens", "G2PTransformer");
  FOCUS_CHECK(offset + tokens.size(1) <= options_.max_len_,
              "[G2PTransformer] target positions up to {} exceed max_len ({})", offset + tokens.size(1), options_.max_len_);
  const double scale = std::sqrt(static_cast<double>(options_.d_model_));
  return embed_dropout_->forward(pos_->forward(tgt_embed_->forward(tokens) * scale, offset));
}

Tensor G2PTransformer::decode(const Tensor& tgt_in, const Tensor& memory, const Tensor& memory_mask,
                              std::vector<Tensor>* cross_weights) const {
  Tensor x = embed_target(tgt_in, 0);
  FOCUS_CHECK(memory.dim() == 3 && memory.size(0) == tgt_in.size(0),
              "[G2PTransformer] memory {} does not match the target batch {}", memory.shape(), tgt_in.shape());
  if (cross_weights) cross_weights->clear();
  for (const auto& layer : layers_) {
    Tensor w;
    x = layer->forward(x, memory, memory_mask, cross_weights ? &w : nullptr);
    if (cross_weights) cross_weights->push_back(w);
  }
  return generator_->forward(decoder_norm_->forward(x));
}

Tensor G2PTransformer::forward(const Tensor& src, const Tensor& tgt_in) const {
  check_tokens(tgt_in, "tgt_in", "G2PTransformer");
  FOCUS_CHECK(src.defined() && src.dim() == 2 && src.size(0) == tgt_in.size(0),
              "[G2PTransformer] src and tgt_in must have the same batch size, got {} and {}",
              src.defined() ? fmt::format("{}", src.shape()) : "undefined", tgt_in.shape());
  check_tokens(src, "src", "G2PTransformer");
  // One host read per batch (is anything padded?), shared by the encoder and the decoder.
  const Tensor pad = eq(src, Scalar(options_.pad_id_));
  const bool any_pad = any_padding(pad);
  const Tensor memory = encode(src, pad, any_pad);
  return decode(tgt_in, memory, memory_mask_of(pad, any_pad));
}

DecoderState G2PTransformer::start(const Tensor& memory, const Tensor& memory_mask, int64_t group, int64_t reserve) const {
  FOCUS_CHECK(group >= 1, "[G2PTransformer] start: group must be at least 1, got {}", group);
  FOCUS_CHECK(reserve >= 0, "[G2PTransformer] start: reserve must be non-negative, got {}", reserve);
  if (memory_mask.defined())
    FOCUS_CHECK(memory.dim() == 3 && memory_mask.dim() == 4 && memory_mask.size(0) == memory.size(0),
                "[G2PTransformer] start: memory_mask {} does not match memory {}", memory_mask.shape(), memory.shape());
  DecoderState state;
  state.memory_mask = memory_mask;
  state.group = group;
  state.reserve = reserve;
  state.self_attn.resize(layers_.size());
  for (const auto& layer : layers_) state.cross_attn.push_back(layer->project_memory(memory));
  return state;
}

Tensor G2PTransformer::step(DecoderState& state, const Tensor& tokens, std::vector<Tensor>* cross_weights) const {
  FOCUS_CHECK(state.cross_attn.size() == layers_.size(), "[G2PTransformer] step needs a state made by start()");
  Tensor x = embed_target(tokens, state.length);
  FOCUS_CHECK(state.rows() == tokens.size(0), "[G2PTransformer] the state holds {} rows but tokens have {}", state.rows(),
              tokens.size(0));
  if (cross_weights) cross_weights->clear();
  for (size_t i = 0; i < layers_.size(); ++i) {
    Tensor w;
    x = layers_[i]->forward_cached(x, state.self_attn[i], state.cross_attn[i], state.memory_mask, cross_weights ? &w : nullptr,
                                   state.group, state.reserve);
    if (cross_weights) cross_weights->push_back(w);
  }
  state.length += tokens.size(1);
  return generator_->forward(decoder_norm_->forward(x));
}

Tensor G2PTransformer::loss(const Tensor& logits, const Tensor& tgt_out, double label_smoothing) const {
  FOCUS_CHECK(logits.dim() == 3 && tgt_out.dim() == 2 && logits.size(0) == tgt_out.size(0) && logits.size(1) == tgt_out.size(1),
              "[G2PTransformer] expected logits [B, T, V] and targets [B, T], got {} and {}", logits.shape(), tgt_out.shape());
  const int64_t V = logits.size(2);
  return cross_entropy(logits.reshape({-1, V}), tgt_out.reshape({-1}),
                       CrossEntropyOptions().ignore_index(options_.pad_id_).label_smoothing(label_smoothing));
}

std::pair<std::vector<Tensor>, std::vector<Tensor>> G2PTransformer::decay_groups() const {
  std::vector<Tensor> decay, no_decay;
  for (const auto& [name, p] : named_parameters()) {
    const bool embedding = name == "src_embed.weight" || name == "tgt_embed.weight";
    (p.dim() >= 2 && !embedding ? decay : no_decay).push_back(p);
  }
  return {decay, no_decay};
}

// ---- decoding -------------------------------------------------------------------------------

int64_t max_decode_steps(const G2POptions& o, int64_t S) { return std::min(o.max_len_, 2 * S + 5); }

std::vector<Hypothesis> greedy_decode(G2PTransformer& model, const Tensor& src_in) {
  NoGradGuard no_grad;
  EvalScope eval(model);
  check_tokens(src_in, "src", "greedy_decode");
  const G2POptions& o = model.options();
  const TensorOptions ids = TensorOptions(kInt64).device(model.device());
  const Tensor src = src_in.to(model.device());
  const int64_t B = src.size(0), V = o.tgt_vocab_size_;
  std::vector<Hypothesis> out(static_cast<size_t>(B));
  if (B == 0) return out;
  const int64_t steps = max_decode_steps(o, src.size(1));
  DecoderState state = model.start(model.encode(src), model.memory_mask(src), 1, steps);
  // The rows still decoding, by source; a source that ends leaves the batch.
  std::vector<int64_t> live(static_cast<size_t>(B)), next(static_cast<size_t>(B), o.bos_id_);
  std::iota(live.begin(), live.end(), 0);
  for (int64_t t = 0; t < steps && !live.empty(); ++t) {
    const int64_t n = static_cast<int64_t>(live.size());
    const Tensor logits = model.step(state, tensor(next, {n, 1}, ids));
    const std::vector<float> lp = log_softmax(logits.select(1, 0), -1).to_vector<float>();
    std::vector<int64_t> kept, new_live, new_next;
    for (int64_t i = 0; i < n; ++i) {
      const float* row = lp.data() + i * V;
      int64_t best = -1;
      for (int64_t v = 0; v < V; ++v)
        if (!banned(o, v) && (best < 0 || row[v] > row[best])) best = v;
      Hypothesis& h = out[static_cast<size_t>(live[static_cast<size_t>(i)])];
      h.log_prob += row[best];
      if (best == o.eos_id_) {
        h.finished = true;
        continue;
      }
      h.tokens.push_back(best);
      kept.push_back(i);
      new_live.push_back(live[static_cast<size_t>(i)]);
      new_next.push_back(best);
    }
    if (!new_live.empty() && static_cast<int64_t>(kept.size()) < n) state.reorder(kept);
    live = std::move(new_live);
    next = std::move(new_next);
  }
  for (auto& h : out)
    h.score = h.log_prob / static_cast<double>(std::max<size_t>(1, h.tokens.size() + (h.finished ? 1 : 0)));
  return out;
}

std::vector<std::vector<Hypothesis>> beam_search(G2PTransformer& model, const Tensor& src_in, const BeamOptions& options) {
  NoGradGuard no_grad;
  EvalScope eval(model);
  check_tokens(src_in, "src", "beam_search");
  const TensorOptions ids = TensorOptions(kInt64).device(model.device());
  const Tensor src = src_in.to(model.device());
  const int64_t K = options.beam_size_;
  FOCUS_CHECK(K >= 1, "[beam_search] beam_size must be at least 1, got {}", K);
  FOCUS_CHECK(options.nbest_ >= 1 && options.nbest_ <= K, "[beam_search] nbest must be in 1 .. beam_size ({}), got {}", K,
              options.nbest_);
  FOCUS_CHECK(std::isfinite(options.length_penalty_), "[beam_search] length_penalty must be finite, got {}",
              options.length_penalty_);
  const G2POptions& o = model.options();
  const int64_t B = src.size(0), V = o.tgt_vocab_size_;
  std::vector<std::vector<Hypothesis>> finished(static_cast<size_t>(B));
  if (B == 0) return finished;
  auto norm_score = [&](double log_prob, size_t length) {
    return log_prob / std::pow(static_cast<double>(std::max<size_t>(1, length)), options.length_penalty_);
  };
  const int64_t steps = max_decode_steps(o, src.size(1));
  // K rows per source, the K rows of a source reading its memory once (group K).
  DecoderState state = model.start(model.encode(src), model.memory_mask(src), K, steps);

  // live: the sources still decoding, in row order: source live[a] owns rows a * K .. a * K
  // + K - 1. A source that is done leaves the batch. At the start only beam 0 of each source
  // is live (score 0, the others -inf), so the first step does not pick the same
  // continuation k times.
  std::vector<int64_t> live(static_cast<size_t>(B));
  std::iota(live.begin(), live.end(), 0);
  std::vector<double> scores(static_cast<size_t>(B * K), kNegInf);
  for (int64_t b = 0; b < B; ++b) scores[static_cast<size_t>(b * K)] = 0.0;
  std::vector<std::vector<int64_t>> tokens(static_cast<size_t>(B * K));
  std::vector<int64_t> next(static_cast<size_t>(B * K), o.bos_id_);

  struct Candidate {
    double score;
    int64_t flat;  // k * V + v
  };
  std::vector<Candidate> cands;
  std::vector<int64_t> origin, new_live, new_next;
  std::vector<double> new_scores;
  for (int64_t t = 0; t < steps && !live.empty(); ++t) {
    const int64_t n = static_cast<int64_t>(live.size()) * K;
    const Tensor logits = model.step(state, tensor(next, {n, 1}, ids));
    const std::vector<float> lp = log_softmax(logits.select(1, 0), -1).to_vector<float>();
    origin.clear();
    new_live.clear();
    new_next.clear();
    new_scores.clear();
    for (size_t a = 0; a < live.size(); ++a) {
      const int64_t b = live[a], first = static_cast<int64_t>(a) * K;
      auto& done_b = finished[static_cast<size_t>(b)];
      cands.clear();
      for (int64_t k = 0; k < K; ++k) {
        const double base = scores[static_cast<size_t>(first + k)];
        if (base == kNegInf) continue;
        const float* row = lp.data() + (first + k) * V;
        for (int64_t v = 0; v < V; ++v)
          if (!banned(o, v) && std::isfinite(row[v])) cands.push_back({base + row[v], k * V + v});
      }
      const size_t top = std::min(cands.size(), static_cast<size_t>(2 * K));
      auto better = [](const Candidate& x, const Candidate& y) {
        return x.score > y.score || (x.score == y.score && x.flat < y.flat);
      };
      std::partial_sort(cands.begin(), cands.begin() + static_cast<std::ptrdiff_t>(top), cands.end(), better);
      const size_t rows_before = origin.size();
      int64_t kept = 0;
      for (size_t i = 0; i < top && kept < K; ++i) {
        const int64_t k = cands[i].flat / V, v = cands[i].flat % V;
        if (v == o.eos_id_) {
          if (static_cast<int64_t>(i) < K) {
            Hypothesis h;
            h.tokens = tokens[static_cast<size_t>(first + k)];
            h.log_prob = cands[i].score;
            h.score = norm_score(h.log_prob, h.tokens.size() + 1);
            h.finished = true;
            done_b.push_back(std::move(h));
          }
          continue;
        }
        origin.push_back(first + k);
        new_scores.push_back(cands[i].score);
        new_next.push_back(v);
        ++kept;
      }
      // Done (K finished), or nothing left to continue: the source leaves the batch.
      if (static_cast<int64_t>(done_b.size()) >= K || kept == 0) {
        origin.resize(rows_before);
        new_scores.resize(rows_before);
        new_next.resize(rows_before);
        continue;
      }
      for (int64_t k = kept; k < K; ++k) {  // dead rows of a live source: nothing to continue
        origin.push_back(first);
        new_scores.push_back(kNegInf);
        new_next.push_back(o.eos_id_);
      }
      new_live.push_back(b);
    }
    std::vector<std::vector<int64_t>> new_tokens(origin.size());
    for (size_t i = 0; i < origin.size(); ++i) {
      if (new_scores[i] == kNegInf) continue;
      new_tokens[i] = tokens[static_cast<size_t>(origin[i])];
      new_tokens[i].push_back(new_next[i]);
    }
    tokens = std::move(new_tokens);
    scores = new_scores;
    next = new_next;
    live = new_live;
    if (!live.empty()) state.reorder(origin);
  }
  // At the length limit the sources still live join their live beams, unfinished.
  for (size_t a = 0; a < live.size(); ++a)
    for (int64_t k = 0; k < K; ++k) {
      const size_t row = a * static_cast<size_t>(K) + static_cast<size_t>(k);
      if (scores[row] == kNegInf) continue;
      Hypothesis h;
      h.tokens = tokens[row];
      h.log_prob = scores[row];
      h.score = norm_score(h.log_prob, h.tokens.size());
      finished[static_cast<size_t>(live[a])].push_back(std::move(h));
    }
  for (auto& f : finished) {
    std::stable_sort(f.begin(), f.end(), [](const Hypothesis& a, const Hypothesis& c) { return a.score > c.score; });
    if (f.size() > static_cast<size_t>(options.nbest_)) f.resize(static_cast<size_t>(options.nbest_));
    if (f.empty()) f.push_back(Hypothesis{});
  }
  return finished;
}

Tensor cross_attention_map(G2PTransformer& model, const Tensor& src_in, const std::vector<int64_t>& tokens, int64_t layer) {
  NoGradGuard no_grad;
  EvalScope eval(model);
  check_tokens(src_in, "src", "cross_attention_map");
  const Tensor src = src_in.to(model.device());
  FOCUS_CHECK(src.size(0) == 1, "[cross_attention_map] expected one source [1, S], got {}", src.shape());
  const int64_t L = model.num_decoder_layers();
  if (layer < 0) layer += L;
  FOCUS_CHECK(layer >= 0 && layer < L, "[cross_attention_map] layer must be in -{} .. {}, got {}", L, L - 1, layer);
  std::vector<int64_t> tgt_in{model.options().bos_id_};
  tgt_in.insert(tgt_in.end(), tokens.begin(), tokens.end());
  const int64_t T = static_cast<int64_t>(tgt_in.size());
  std::vector<Tensor> weights;
  model.decode(tensor(tgt_in, {1, T}, TensorOptions(kInt64).device(model.device())), model.encode(src),
               model.memory_mask(src), &weights);
  return weights[static_cast<size_t>(layer)].select(0, 0).mean({0});  // [H, T, S] -> [T, S]
}

}  // namespace focus::models::g2p
