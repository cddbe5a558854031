// `flatbench convert`: a llama2.c checkpoint written out as a Hugging Face LLaMA folder,
// so the llama2c and hf loaders can be tested against each other on the real model.
#pragma once

#include <filesystem>

namespace fb {

// Writes out_dir/config.json (LlamaForCausalLM), out_dir/model.safetensors (F32, q/k rows
// permuted to HF's rotate-half layout, lm_head only for an unshared classifier) and a copy
// of the SentencePiece tokenizer as out_dir/tokenizer.model (skipped when `tokenizer` is
// empty). Creates out_dir; throws std::runtime_error naming the file on failure.
void convert_llama2c_to_hf(const std::filesystem::path& in_bin, const std::filesystem::path& tokenizer,
                           const std::filesystem::path& out_dir);

}  // namespace fb
