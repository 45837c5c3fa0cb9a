// decode_png.h — PNG (bit depth <= 8) → interleaved 8-bit samples with the system libpng.
#pragma once
#include "decode_common.h"

namespace imagereward {

// Bit depths 1/2/4/8 only (16-bit → Unsupported). Output per colour type, in the layout
// of the Pillow mode the file opens as: grey → 1 channel (1/2/4-bit scaled ×255/×85/×17,
// as Pillow's 1, L;2, L;4 rawmodes), RGB → 3, palette → 3 (RGB looked up in PLTE;
// indices past its end read Pillow's default ramp i → (i, i, i)), grey+alpha → 2,
// RGBA → 4. tRNS is never applied (Pillow keeps it as info, not as a band).
DecodeResult decode_png(const uint8_t* data, size_t size, uint64_t max_pixels);

}  // namespace imagereward
