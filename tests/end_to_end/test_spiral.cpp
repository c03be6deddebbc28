#include "test_util.h"

#include "spiral.h"

TEST_SUITE("end_to_end") {

TEST_CASE("a two-layer MLP with a hand-written SGD step learns the 2-D spiral to >= 95%") {
  using namespace focus;
  demo::Spiral data = demo::make_spiral(100, 3, 0.2, 0);
  CHECK(data.x.shape() == Shape{300, 2});
  CHECK(data.y.shape() == Shape{300});
  auto res = demo::train_mlp(data, 64, 2000, 1.0, 1);
  MESSAGE("loss " << res.first_loss << " -> " << res.final_loss << ", accuracy " << res.accuracy);
  CHECK(res.final_loss < 0.5 * res.first_loss);
  CHECK(res.accuracy >= 0.95);
}

}
