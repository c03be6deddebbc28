#pragma once
/// Grapheme-to-phoneme translation with an encoder-decoder Transformer (letters -> ARPAbet
/// phonemes), written only against the public API (<focus/focus.h>).
///
/// Layout (pre-norm throughout, batch first):
///   src_embed [Vs, E] (scaled by sqrt(E)) + sinusoidal positions -> dropout ->
///   encoder (nn::TransformerEncoder of norm_first layers, final LayerNorm "encoder.norm") ->
///   memory [B, S, E];
///   tgt_embed [Vt, E] (scaled by sqrt(E)) + sinusoidal positions -> dropout ->
///   decoder layers "decoder.layers.<i>" (G2PDecoderLayer: the children and state_dict names of
///   nn::TransformerDecoderLayer, so weights load from either) -> "decoder_norm" ->
///   "generator" Linear [Vt, E] -> logits.
/// The decoder layer computes its attention itself (from nn::MultiheadAttention's parameters
/// and scaled_dot_product_attention) so that incremental decoding can keep a key-value cache
/// and the cross-attention weights can be returned for pictures.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <focus/focus.h>

namespace focus::models::g2p {

/// Hyperparameters of G2PTransformer. Token ids follow data::Vocab's specials: pad 0, bos 1,
/// eos 2, unk 3 (source and target vocabularies alike).
struct G2POptions {
  G2POptions(int64_t src_vocab_size, int64_t tgt_vocab_size)
      : src_vocab_size_(src_vocab_size), tgt_vocab_size_(tgt_vocab_size) {}
  int64_t src_vocab_size_;
  int64_t tgt_vocab_size_;
  int64_t d_model_ = 256;
  int64_t nhead_ = 4;
  int64_t num_encoder_layers_ = 3;
  int64_t num_decoder_layers_ = 3;
  int64_t dim_feedforward_ = 1024;
  double dropout_ = 0.1;
  std::string activation_ = "relu";
  int64_t max_len_ = 64;  // longest source or target sequence (positions)
  int64_t pad_id_ = 0;
  int64_t bos_id_ = 1;
  int64_t eos_id_ = 2;
  int64_t unk_id_ = 3;    // never generated; -1: none
  G2POptions& d_model(int64_t v) { d_model_ = v; return *this; }
  G2POptions& nhead(int64_t v) { nhead_ = v; return *this; }
  G2POptions& num_encoder_layers(int64_t v) { num_encoder_layers_ = v; return *this; }
  G2POptions& num_decoder_layers(int64_t v) { num_decoder_layers_ = v; return *this; }
  G2POptions& dim_feedforward(int64_t v) { dim_feedforward_ = v; return *this; }
  /// Dropout on the embeddings, after attention / feed-forward blocks, inside the
  /// feed-forward block and on the attention weights.
  G2POptions& dropout(double v) { dropout_ = v; return *this; }
  /// "relu" or "gelu".
  G2POptions& activation(std::string v) { activation_ = std::move(v); return *this; }
  G2POptions& max_len(int64_t v) { max_len_ = v; return *this; }
  G2POptions& pad_id(int64_t v) { pad_id_ = v; return *this; }
  G2POptions& bos_id(int64_t v) { bos_id_ = v; return *this; }
  G2POptions& eos_id(int64_t v) { eos_id_ = v; return *this; }
  G2POptions& unk_id(int64_t v) { unk_id_ = v; return *this; }
};

/// Keys and values one attention layer has seen: k, v [B, H, S, head_dim]. A self-attention
/// cache keeps them in buffers with room for more positions (k and v are views of the
/// buffers' first rows and positions), so a decoding step writes only its own keys and
/// values, and a beam reorder gathers the kept rows straight into the other pair of buffers.
/// Copies of a cache (of a DecoderState) share the buffers but never overwrite each other:
/// a copy that appends after another has written moves to buffers of its own.
struct KVCache {
  Tensor k, v;
  int64_t length() const { return k.defined() ? k.size(2) : 0; }
  /// Positions the buffers hold (length() when there are none).
  int64_t capacity() const { return k_store_.defined() ? k_store_.size(2) : length(); }
  /// Appends k_new, v_new [B, H, L, head_dim] at positions length() .. + L - 1. When the
  /// buffers are full it moves to new ones with room for max(reserve, 2 * (length() + L)).
  /// A first append with reserve <= L, and any append while autograd records, keeps the
  /// tensors themselves (joined by cat) instead: no buffers.
  void append(const Tensor& k_new, const Tensor& v_new, int64_t reserve = 0);
  /// Keeps rows index [N'] (int64, on the cache's device) in that order, gathered into new
  /// buffers of the same size (rows beyond N' unused), so that the buffers a decode frees
  /// and takes stay of one size as its batch shrinks.
  void select_rows(const Tensor& index);

 private:
  Tensor k_store_, v_store_;                // [R, H, capacity, head_dim], R >= B
  uint64_t k_written_ = 0, v_written_ = 0;  // their versions after this cache's last write
};

/// Everything incremental decoding keeps between steps. The decoded rows come in groups of
/// `group` consecutive rows that read one source (beam search: a source's beams), so the
/// cross-attention keys and values are kept once per source, not once per row.
struct DecoderState {
  std::vector<KVCache> self_attn;   // per layer: [N, H, length, head_dim], N = rows decoded
  std::vector<KVCache> cross_attn;  // per layer: [N / group, H, S, head_dim], the projected memory
  Tensor memory_mask;               // [N / group, 1, 1, S] bool, true = attend (undefined: no padding)
  int64_t length = 0;               // target positions decoded so far
  int64_t group = 1;                // decoded rows per source
  int64_t reserve = 0;              // target positions the self caches make room for at once
  /// Decoded rows now (N).
  int64_t rows() const;
  /// Row i continues old row rows[i] (beam reordering), for i < rows.size(): the rows of a
  /// group must all come from one old group, and old groups left out are dropped (finished
  /// sources), with their cross keys and values. rows.size() is a multiple of group.
  void reorder(const std::vector<int64_t>& rows);
};

/// A pre-norm Transformer decoder layer with the children of nn::TransformerDecoderLayer
/// (self_attn, multihead_attn, linear1, dropout, linear2, norm1, norm2, norm3, dropout1..3),
/// computing x + SA(norm1(x)), then x + CA(norm2(x), memory), then x + FF(norm3(x)).
class G2PDecoderLayer : public nn::Module {
 public:
  explicit G2PDecoderLayer(const nn::TransformerLayerOptions& options);
  /// Teacher-forced: x [B, T, E] (causal self-attention), memory [B, S, E], memory_mask
  /// [B, 1, 1, S] bool (true = attend) or undefined -> [B, T, E]. When cross_weights is
  /// given it receives the cross-attention weights [B, H, T, S].
  Tensor forward(const Tensor& x, const Tensor& memory, const Tensor& memory_mask, Tensor* cross_weights = nullptr);
  /// Incremental: x [N, L, E] holds target positions self_cache.length() .. + L - 1; appends
  /// their keys and values to self_cache (making room for `reserve` positions when it grows)
  /// and attends to the cross keys / values [N / group, H, S, head_dim], which row r reads
  /// at r / group. cross_weights, when given, receives [N, H, L, S].
  Tensor forward_cached(const Tensor& x, KVCache& self_cache, const KVCache& cross_cache, const Tensor& memory_mask,
                        Tensor* cross_weights = nullptr, int64_t group = 1, int64_t reserve = 0);
  /// The cross-attention keys and values of memory [B, S, E]: [B, H, S, head_dim] each.
  KVCache project_memory(const Tensor& memory) const;
  const nn::TransformerLayerOptions& options() const { return options_; }
  const std::shared_ptr<nn::MultiheadAttention>& self_attn() const { return self_attn_; }
  const std::shared_ptr<nn::MultiheadAttention>& multihead_attn() const { return multihead_attn_; }

 private:
  Tensor self_block(const Tensor& q, const KVCache& kv, int64_t offset) const;
  Tensor cross_block(const Tensor& h, const KVCache& kv, const Tensor& memory_mask, Tensor* weights, int64_t group) const;
  Tensor ff_block(const Tensor& h) const;
  nn::TransformerLayerOptions options_;
  std::shared_ptr<nn::MultiheadAttention> self_attn_, multihead_attn_;
  std::shared_ptr<nn::Linear> linear1_, linear2_;
  std::shared_ptr<nn::LayerNorm> norm1_, norm2_, norm3_;
  std::shared_ptr<nn::Dropout> dropout_, dropout1_, dropout2_, dropout3_;
};

/// The G2P model. Initialization: embeddings N(0, E^-1/2) (pad row zero), every other
/// matrix xavier_uniform_ (as nn::Transformer), vectors as their modules set them; drawn
/// from gen (default generator when null).
class G2PTransformer : public nn::Module {
 public:
  explicit G2PTransformer(const G2POptions& options, Generator* gen = nullptr);
  /// src [B, S] int64 letter ids (pad_id after the end) -> memory [B, S, E].
  Tensor encode(const Tensor& src) const;
  /// src [B, S] -> [B, 1, 1, S] bool, true where a letter is (undefined when nothing is padded).
  Tensor memory_mask(const Tensor& src) const;
  /// Teacher-forced decoding: tgt_in [B, T] (bos, p1, ..., padded) -> logits [B, T, Vt].
  /// cross_weights, if given, receives one [B, H, T, S] tensor per decoder layer.
  Tensor decode(const Tensor& tgt_in, const Tensor& memory, const Tensor& memory_mask,
                std::vector<Tensor>* cross_weights = nullptr) const;
  /// encode + decode: src [B, S], tgt_in [B, T] -> logits [B, T, Vt].
  Tensor forward(const Tensor& src, const Tensor& tgt_in) const;
  Tensor operator()(const Tensor& src, const Tensor& tgt_in) const { return forward(src, tgt_in); }
  /// Starts incremental decoding over memory [B, S, E] (projects the cross keys / values)
  /// for B * group rows, row r reading source r / group; the self caches make room for
  /// `reserve` positions at once (0: they grow as needed).
  DecoderState start(const Tensor& memory, const Tensor& memory_mask, int64_t group = 1, int64_t reserve = 0) const;
  /// Feeds tokens [N, L] (the next L target positions of the state's N rows) -> logits
  /// [N, L, Vt]; extends the cache.
  Tensor step(DecoderState& state, const Tensor& tokens, std::vector<Tensor>* cross_weights = nullptr) const;
  /// Label-smoothed cross entropy of logits [B, T, Vt] against tgt_out [B, T] (pad ignored) -> 0-d.
  Tensor loss(const Tensor& logits, const Tensor& tgt_out, double label_smoothing = 0.0) const;
  /// Parameters in two AdamW groups: matrices get weight decay; biases, LayerNorm weights
  /// and embeddings do not.
  std::pair<std::vector<Tensor>, std::vector<Tensor>> decay_groups() const;
  /// The device of the weights (where Module::to put them): inputs go there, and decoding
  /// builds its tensors there.
  Device device() const;
  const G2POptions& options() const { return options_; }
  int64_t num_decoder_layers() const { return static_cast<int64_t>(layers_.size()); }

 private:
  Tensor embed_target(const Tensor& tokens, int64_t offset) const;
  // encode with the padding already known: pad [B, S] bool (true = padding), used only when any_pad
  Tensor encode(const Tensor& src, const Tensor& pad, bool any_pad) const;
  G2POptions options_;
  std::shared_ptr<nn::Embedding> src_embed_, tgt_embed_;
  std::shared_ptr<nn::SinusoidalPositionalEncoding> pos_;
  std::shared_ptr<nn::Dropout> embed_dropout_;
  std::shared_ptr<nn::TransformerEncoder> encoder_;
  std::shared_ptr<nn::Module> decoder_;
  std::vector<std::shared_ptr<G2PDecoderLayer>> layers_;
  std::shared_ptr<nn::LayerNorm> decoder_norm_;
  std::shared_ptr<nn::Linear> generator_;
};

/// A decoded phoneme sequence (ids without bos / eos) with its total log-probability and
/// the score it was ranked by (log-probability / length^length_penalty, length counting eos).
struct Hypothesis {
  std::vector<int64_t> tokens;
  double log_prob = 0.0;
  double score = 0.0;
  bool finished = false;  // ended with eos (false: cut at the length limit)
};

/// Length limit of decoding for sources of padded length S: min(max_len, 2 S + 5) tokens.
int64_t max_decode_steps(const G2POptions& options, int64_t S);

/// Greedy decoding of a batch src [B, S] -> B hypotheses (batched, key-value cached). The
/// model is put in eval mode for the call. pad, bos and unk are never generated. src may be
/// on any device: decoding runs on the model's (G2PTransformer::device()), reading each
/// step's log-probabilities back to choose the tokens.
std::vector<Hypothesis> greedy_decode(G2PTransformer& model, const Tensor& src);

struct BeamOptions {
  int64_t beam_size_ = 5;
  double length_penalty_ = 1.0;  // score = log_prob / length^length_penalty
  int64_t nbest_ = 1;            // hypotheses returned per source (<= beam_size)
  BeamOptions& beam_size(int64_t v) { beam_size_ = v; return *this; }
  BeamOptions& length_penalty(double v) { length_penalty_ = v; return *this; }
  BeamOptions& nbest(int64_t v) { nbest_ = v; return *this; }
};

/// Beam search over a batch src [B, S] (B * beam_size rows decoded together, key-value
/// cached) -> per source its nbest hypotheses, best score first. Each step keeps, per
/// source, the 2k best continuations: those ending in eos finish (while among the first k),
/// the best k others stay live; a source is done when k hypotheses have finished (or at the
/// length limit, where live beams join as unfinished). beam_size 1 gives greedy's result.
/// Runs on the model's device, as greedy_decode.
std::vector<std::vector<Hypothesis>> beam_search(G2PTransformer& model, const Tensor& src,
                                                 const BeamOptions& options = {});

/// Cross-attention weights of the model on its own prediction (or any target) for one
/// source: src [1, S], tokens (the phoneme ids, without bos / eos) -> [T, S] weights where
/// row t is the step that produced tokens[t] (the last row: the step producing eos),
/// averaged over the heads of decoder layer `layer` (-1: the last), on the model's device.
Tensor cross_attention_map(G2PTransformer& model, const Tensor& src, const std::vector<int64_t>& tokens,
                           int64_t layer = -1);

}  // namespace focus::models::g2p
