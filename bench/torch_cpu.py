"""PyTorch eager fp32 side of bench/scorer-cpu.ts.

Reads model.safetensors itself (8-byte little-endian header length, JSON
header, then raw little-endian tensors; Debian has no safetensors package),
maps the weights without copying (numpy memmap, copy-on-write), and runs the
independent reference forward of test/fixtures/model/reference.py on the
inputs bench/scorer-cpu.ts prepared. Prints one JSON line.

usage: torch_cpu.py <model dir> <inputs prefix> <threads> <seconds>
"""

import json
import os
import resource
import struct
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "fixtures", "model"))
import reference  # noqa: E402

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    mm = np.memmap(path, dtype=np.uint8, mode="c", offset=8 + n)
    sd = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        arr = mm[a:b].view(DTYPES[info["dtype"]]).reshape(info["shape"])
        sd[name] = torch.from_numpy(arr)
    return sd


def blas_in_use():
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            if "blas" in p or "mkl" in p.lower() or "dnnl" in p:
                libs.add(os.path.realpath(p))
    return ", ".join(sorted(libs)) or "none mapped"


def main():
    model_dir, inputs, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)["config"]
    sd = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    w = reference.load_weights(sd, config)
    load_ms = (time.perf_counter() - t0) * 1000

    meta = json.load(open(inputs + ".json"))
    B = meta["batch"]
    pixels = torch.from_numpy(np.fromfile(inputs + ".f32", dtype=np.float32).reshape(B, 3, 224, 224))
    ids_row = torch.tensor(meta["input_ids"], dtype=torch.long)
    mask_row = torch.tensor(meta["attention_mask"], dtype=torch.long)

    def forward(b):
        ids = ids_row.unsqueeze(0).expand(b, -1).contiguous()
        mask = mask_row.unsqueeze(0).expand(b, -1).contiguous()
        return reference.forward(w, pixels[:b], ids, mask)["reward"]

    pairs, iters, rewards, f1 = {}, {}, [], float("nan")
    for b in (1, B):
        r = forward(b)  # warm-up
        if b == B:
            rewards = [float(x) for x in r]
        times = []
        start = time.perf_counter()
        while len(times) < 2 or (time.perf_counter() - start < seconds and len(times) < 50):
            s = time.perf_counter()
            forward(b)
            times.append(time.perf_counter() - s)
        med = sorted(times)[len(times) // 2]
        if b == 1:
            f1 = med * 1000
        pairs[str(b)] = b / med
        iters[str(b)] = len(times)
    print(json.dumps({
        "loadMs": load_ms,
        "forward1Ms": f1,
        "pairsPerSec": pairs,
        "iterations": iters,
        "rewards": rewards,
        "maxRssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "blas": blas_in_use(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
