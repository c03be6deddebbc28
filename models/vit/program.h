#pragma once
/// The vit program: a Vision Transformer trained on Fashion-MNIST (`focus train vit`), its
/// evaluation (`focus eval vit`), and `focus classify vit` (classify test images or PGM files,
/// with attention pictures).
///
/// Data: the 60,000 training images are split into train (the first 55,000) and validation
/// (the last `valid_size` = 5,000, the file's order, which is not sorted by class); the 10,000
/// test images give the final figure. Pixels are normalized with the mean and standard
/// deviation of the training part (stored in the checkpoint). Augmentation (training only,
/// `augment`): a random crop with `crop_padding` pixels of zero padding (torchvision's
/// RandomCrop(28, padding)) and a random horizontal flip, drawn from (seed, epoch, index), so
/// a resumed run sees the same images. `dataset=synthetic` is a small generated task (a bright
/// centred square whose size names the class) for tests and smoke runs.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <focus/focus.h>

#include "data/dataset.h"
#include "models/vit/vit.h"
#include "training/config.h"
#include "models/zoo/registry.h"

namespace focus::models::vit {

/// One image of a set: its index in the set, its label and its pixels (height * width bytes,
/// row-major, owned by the ImageSet).
struct ImageExample {
  int64_t index = 0;
  int64_t label = 0;
  const uint8_t* pixels = nullptr;
};

/// Images and labels in memory: images [N, H, W] uint8, labels [N] int64 in 0..num_classes-1.
class ImageSet : public data::Dataset<ImageExample> {
 public:
  /// Bad shapes, dtypes or labels -> focus::Error naming "[vit]" and `what`.
  ImageSet(Tensor images, Tensor labels, int64_t num_classes, const std::string& what = "images");
  int64_t size() const override { return n_; }
  ImageExample get(int64_t index) const override;
  int64_t height() const { return h_; }
  int64_t width() const { return w_; }
  const Tensor& images() const { return images_; }
  const Tensor& labels() const { return labels_; }
  /// Rows [begin, end) as a new set (shares no state with this one).
  ImageSet slice(int64_t begin, int64_t end) const;

 private:
  Tensor images_, labels_;
  int64_t n_ = 0, h_ = 0, w_ = 0;
  const uint8_t* data_ = nullptr;
  const int64_t* label_data_ = nullptr;
};

/// Per-pixel normalization: (pixel / 255 - mean) / std.
struct Normalize {
  double mean = 0.0;
  double std = 1.0;
};
/// Mean and standard deviation of all pixels of images [N, H, W] uint8, scaled to [0, 1].
Normalize pixel_stats(const Tensor& images);

/// Random-crop-with-padding and horizontal-flip augmentation; off when padding == 0 and !flip.
struct Augment {
  int64_t padding = 0;
  bool flip = false;
  uint64_t seed = 0;
};

/// A batch: images [B, 1, H, W] float32 (normalized), labels [B] int64, indices [B] (the
/// examples' indices in their set).
struct ImageBatch {
  Tensor images, labels;
  std::vector<int64_t> indices;
  /// Puts images and labels in page-locked memory (DataLoaderOptions::pin_memory), so that
  /// `.to(device, true)` copies them to a GPU asynchronously.
  void pin_memory() {
    images = images.pin_memory();
    labels = labels.pin_memory();
  }
};

/// Normalizes (and, with aug, augments for epoch `epoch`) examples of size h x w into a batch.
/// The augmentation of an example depends only on (aug.seed, epoch, example.index).
ImageBatch collate_images(const std::vector<ImageExample>& examples, int64_t h, int64_t w, const Normalize& norm,
                          const Augment* aug = nullptr, int64_t epoch = 0);

/// Copies one h x w image shifted by (dy, dx) (out[y][x] = src[y + dy][x + dx], zero outside;
/// the crop of a zero-padded image) and mirrored left-right first when flip, normalized, into dst.
void augment_image(const uint8_t* src, int64_t h, int64_t w, int64_t dy, int64_t dx, bool flip, const Normalize& norm,
                   float* dst);

/// The data of a run.
struct VitData {
  std::shared_ptr<ImageSet> train, valid, test;
  std::vector<std::string> classes;
};
/// config "dataset": "fashion-mnist" (the fetched copy; split as above with "valid_size") or
/// "synthetic" (generated from "seed"). Unknown names -> focus::Error listing both.
VitData load_data(const training::Config& config);
/// The synthetic task: n 28 x 28 images of 10 classes (class k, named "square <side>" = a
/// bright centred square of side 6 + 2k on noise; flips and small shifts keep the class), from seed.
std::pair<Tensor, Tensor> synthetic_images(int64_t n, uint64_t seed);

/// The model described by a config (keys patch_size, dim, depth, heads, mlp_dim, dropout).
ViTConfig vit_config(const training::Config& config, int64_t image_size, int64_t num_classes);

/// Accuracy of a model on a set: overall, per class, and the mean cross entropy.
struct EvalResult {
  double loss = 0.0, accuracy = 0.0;
  std::vector<int64_t> correct, total;   // per class
  std::vector<int64_t> predictions;      // per example, in set order
};
/// The batches are moved to the model's device; the predictions are read back per batch.
EvalResult evaluate_set(VisionTransformer& model, const ImageSet& set, const Normalize& norm, int64_t batch_size,
                        int64_t num_classes);

/// The report's per-class table: "class  accuracy  (correct/total)" lines.
std::string per_class_table(const EvalResult& r, const std::vector<std::string>& classes);

/// Everything the CLI needs: default config, "full" preset, train, evaluate, classify.
zoo::ModelEntry model_entry();
/// The default config (trains in <= 10 minutes on 2 cores).
training::Config default_config();
/// The "full" preset (targets >= 90% test accuracy within an hour on 2 cores).
training::Config full_config();

}  // namespace focus::models::vit
