// A program outside the focus tree, built against the installed package.
#include <focus/focus.h>
#include <focus/training/tensorboard.h>

#include <filesystem>

int main() {
  focus::Tensor x = focus::tensor({2.f, 3.f}).requires_grad_();
  focus::Tensor y = (x * x).sum();
  y.backward();
  fmt::print("grad = {}\n", x.grad().to_vector<float>());
  // training/ is installed too, and the static library's libpng is found (find_dependency(PNG)).
  const auto dir = std::filesystem::temp_directory_path() / "focus_install_app_tb";
  {
    focus::training::SummaryWriter writer(dir.string());
    writer.add_scalar("loss", y.item<double>(), 1);
    writer.add_image("img", focus::ones({3, 2, 2}), 1);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
