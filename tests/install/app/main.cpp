// A program outside the focus tree, built against the installed package.
#include <focus/focus.h>

int main() {
  focus::Tensor x = focus::tensor({2.f, 3.f}).requires_grad_();
  focus::Tensor y = (x * x).sum();
  y.backward();
  fmt::print("grad = {}\n", x.grad().to_vector<float>());
  return 0;
}
