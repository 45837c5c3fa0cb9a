// normalize.h — crop + torchvision ToTensor + Normalize, fused, float32 CHW out.
//
// Layout: input interleaved RGB u8 (width*3 bytes per row); output float32
// planar [3][size][size] (what the model consumes), element
//   out[c][y][x] = ((float)rgb[top + y][left + x][c] / 255.0f - mean[c]) / std[c]
// Precision: every step is one IEEE float32 operation (division, subtraction,
// division), exactly torchvision's `ToTensor` (`img.float().div(255)`) followed
// by `Normalize` (`sub_(mean).div_(std)` with mean/std as float32 tensors).
// An 8-bit input has 256 possible values per channel, so the three chains are
// evaluated once into a 3x256 table and the crop becomes a table gather.
//
// Preconditions (checked by the caller, src/addon.cc): the crop lies inside the
// image, size >= 1, std[c] != 0, `out` holds 3*size*size floats.
#pragma once

#include <cstdint>

namespace imagereward {

void crop_normalize_rgb_chw(const uint8_t* rgb, int width, int height, int left, int top, int size,
                            const float mean[3], const float std[3], float* out);

}  // namespace imagereward
