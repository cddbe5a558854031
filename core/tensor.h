// The dense types every layer shares: row-major fp32 matrices (activations are tokens ×
// channels, weights out × in, as the checkpoints store them) and fp32 vectors.
#pragma once

#include <Eigen/Core>

namespace fb {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXf;

}  // namespace fb
