// A small PNG reader (8-bit RGB / RGBA / grey, non-interlaced) on zlib, so tests can look at
// the pixels of a headless-browser screenshot instead of trusting that a file was written.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace fb {

struct Image {
  int width = 0, height = 0, channels = 0;  // channels: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
  std::vector<uint8_t> pixels;              // row-major, unfiltered
};

// Throws std::runtime_error naming the file on anything it cannot read.
Image read_png(const std::filesystem::path& path);

struct PixelStats {
  double non_background = 0;  // share of pixels that differ from the top-left pixel's colour
  int distinct_colours = 0;   // distinct RGB values (capped at 4096)
};
PixelStats pixel_stats(const Image& img);

}  // namespace fb
