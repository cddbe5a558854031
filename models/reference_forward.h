// A plain reference forward pass: one token, one head, one dot product at a time, with
// double accumulation and no BLAS. It exists to check Model::forward (the fast path) and
// must stay obviously correct rather than fast.
#pragma once

#include "models/model.h"

#include <span>

namespace fb {

// Logits (T × vocab) for one window. Sites with an operator installed run that operator
// (it is part of the model); dense sites use loops. Hooks are not called.
Mat reference_forward(const Model& model, std::span<const int> tokens);

}  // namespace fb
