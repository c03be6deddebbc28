// The demo's main job until the model zoo lands: a two-layer MLP learns the 2-D spiral,
// printing its loss as it falls.
#include "spiral.h"

int main() {
  using namespace focus;
  demo::Spiral data = demo::make_spiral(/*points=*/200, /*classes=*/3, /*noise=*/0.2, /*seed=*/0);
  fmt::print("focus demo: two-layer MLP (2 -> 128 -> 3) on a 3-arm spiral, {} points, full-batch SGD\n",
             data.x.size(0));
  auto res = demo::train_mlp(data, /*hidden=*/128, /*steps=*/3000, /*lr=*/1.0, /*seed=*/1,
                             [](int64_t step, double loss) { fmt::print("step {:5d}  loss {:.4f}\n", step, loss); },
                             /*report_every=*/250);
  fmt::print("loss {:.4f} -> {:.4f}, training accuracy {:.1f}%\n", res.first_loss, res.final_loss,
             100.0 * res.accuracy);
  return res.final_loss < res.first_loss ? 0 : 1;
}
