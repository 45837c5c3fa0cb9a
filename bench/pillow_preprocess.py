#!/usr/bin/python3
"""Baseline for `npm run bench`: upstream ImageReward's preprocessing
(Pillow + torchvision) on one thread, decode through normalized tensor.

usage: pillow_preprocess.py SECONDS FILE...   → one JSON line {file: images_per_second}
"""
import io
import json
import sys
import time

import torch
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, Normalize, Resize, ToTensor
from torchvision.transforms import InterpolationMode

torch.set_num_threads(1)
transform = Compose([
    Resize(224, interpolation=InterpolationMode.BICUBIC),
    CenterCrop(224),
    lambda im: im.convert("RGB"),
    ToTensor(),
    Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
])

seconds = float(sys.argv[1])
result = {}
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    transform(Image.open(io.BytesIO(data)))  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        transform(Image.open(io.BytesIO(data)))
        n += 1
    result[path] = n / (time.perf_counter() - t0)
print(json.dumps(result))
