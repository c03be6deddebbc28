#pragma once
/// Parameter initialization, as torch.nn.init: each fills a tensor in place (without
/// recording autograd) and returns it. Random fills use the default generator unless one
/// is given.
#include <string_view>
#include <utility>

#include "core/random.h"
#include "core/tensor.h"

namespace focus::nn::init {

/// Recommended gain for a nonlinearity: linear, conv*, sigmoid -> 1; tanh -> 5/3;
/// relu -> sqrt(2); leaky_relu -> sqrt(2 / (1 + param^2)) (param = negative slope,
/// default 0.01); selu -> 3/4.
double calculate_gain(std::string_view nonlinearity, double param = 0.01);
/// (fan_in, fan_out) of a weight of shape [out, in, *receptive]: fan_in = in * receptive,
/// fan_out = out * receptive. Needs at least 2 dims.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t);

/// Uniform in [a, b).
const Tensor& uniform_(const Tensor& t, double a = 0.0, double b = 1.0, Generator* gen = nullptr);
/// Normal with the given mean and std.
const Tensor& normal_(const Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
/// Normal(mean, std) truncated to [a, b] (inverse-CDF sampling, as PyTorch).
const Tensor& trunc_normal_(const Tensor& t, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0,
                            Generator* gen = nullptr);
const Tensor& constant_(const Tensor& t, double value);
const Tensor& zeros_(const Tensor& t);
const Tensor& ones_(const Tensor& t);
/// U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out)).
const Tensor& xavier_uniform_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
/// N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)).
const Tensor& xavier_normal_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
/// U(-bound, bound), bound = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a),
/// fan = fan_in or fan_out by mode ("fan_in" / "fan_out").
const Tensor& kaiming_uniform_(const Tensor& t, double a = 0.0, std::string_view mode = "fan_in",
                               std::string_view nonlinearity = "leaky_relu", Generator* gen = nullptr);
/// N(0, std^2), std = gain / sqrt(fan).
const Tensor& kaiming_normal_(const Tensor& t, double a = 0.0, std::string_view mode = "fan_in",
                              std::string_view nonlinearity = "leaky_relu", Generator* gen = nullptr);

}  // namespace focus::nn::init
