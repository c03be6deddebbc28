#include "nn/embedding.h"

#include "autograd/functions/indexing.h"
#include "autograd/node.h"
#include "core/creation.h"
#include "nn/init.h"

namespace focus::nn {

namespace {
EmbeddingOptions checked(EmbeddingOptions o) {
  FOCUS_CHECK(o.num_embeddings_ >= 0 && o.embedding_dim_ >= 0,
              "[Embedding] num_embeddings and embedding_dim must be non-negative, got {} and {}", o.num_embeddings_,
              o.embedding_dim_);
  if (o.padding_idx_) {
    const int64_t p = *o.padding_idx_, n = o.num_embeddings_;
    FOCUS_CHECK(p >= -n && p < n, "[Embedding] padding_idx must be within num_embeddings ({}), got {}", n, p);
    if (p < 0) o.padding_idx_ = p + n;
  }
  return o;
}
}  // namespace

Embedding::Embedding(const EmbeddingOptions& options) : Module("Embedding"), options_(checked(options)) {
  weight_ = register_parameter("weight", empty({options_.num_embeddings_, options_.embedding_dim_}));
  reset_parameters();
}

void Embedding::reset_parameters() {
  init::normal_(weight_);
  if (options_.padding_idx_) {
    NoGradGuard g;
    weight_.select(0, *options_.padding_idx_).fill_(0);
  }
}

std::shared_ptr<Embedding> Embedding::from_pretrained(const Tensor& embeddings, bool freeze,
                                                      std::optional<int64_t> padding_idx) {
  FOCUS_CHECK(embeddings.defined() && embeddings.dim() == 2,
              "[Embedding] from_pretrained expects a 2-D tensor [num_embeddings, embedding_dim], got {}",
              embeddings.defined() ? fmt::format("{}", embeddings.shape()) : std::string("undefined"));
  auto e = std::make_shared<Embedding>(
      EmbeddingOptions(embeddings.size(0), embeddings.size(1)).padding_idx(padding_idx));
  e->to(embeddings.dtype());
  e->to(embeddings.device());
  {
    NoGradGuard g;
    e->weight_.copy_(embeddings);
  }
  e->weight_.requires_grad_(!freeze);
  return e;
}

Tensor Embedding::forward(const Tensor& indices) const {
  FOCUS_CHECK(indices.defined(), "[Embedding] the input is undefined");
  FOCUS_CHECK(indices.dtype() == kInt64 || indices.dtype() == kInt32,
              "[Embedding] expected int64 or int32 indices, got {}", indices.dtype());
  return embedding(weight_, indices, options_.padding_idx_);
}

std::string Embedding::extra_repr() const {
  std::string s = fmt::format("{}, {}", options_.num_embeddings_, options_.embedding_dim_);
  if (options_.padding_idx_) s += fmt::format(", padding_idx={}", *options_.padding_idx_);
  return s;
}

}  // namespace focus::nn
