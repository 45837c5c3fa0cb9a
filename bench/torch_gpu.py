"""PyTorch baselines for the CUDA engine, run on the GPU machine by
native/scripts/gpu-check.sh (that machine has PyTorch but no Node).

Usage: python3 bench/torch_gpu.py --model <model dir> [--refs <refs dir>] [--seconds S]
                                  [--batches 32,128] [--device cuda|cpu]
(--device cpu is a dry run of this script on a machine without a GPU: every path runs,
the "fast" forward in fp32 and, on PyTorch < 2.0, with a plain-math stand-in for SDPA.)

Loads model.safetensors (own reader: 8-byte little-endian header length, JSON
header, raw little-endian tensors; no safetensors package needed) into the
independent PyTorch reference of test/fixtures/model/reference.py and measures,
on the same card as the engine:

  fp32-loop   upstream's way: fp32 eager, one image at a time (ImageReward's
              inference_rank loops over images), TF32 off — pairs/s
  bf16-sdpa   bf16 weights and activations, torch.nn.functional.scaled_dot_product_attention,
              batched (B = 32 and 128) — pairs/s

With --refs (the directory bench/gpu-refs.ts writes: refs.json + refs.bin), it
also scores the reference inputs in fp32 on the device and reports the largest
|reward - ORT fp32 reference|, which proves the regenerated random weights are
the ones the references were computed with.

Prints one JSON object per line; the last line is a summary.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "fixtures", "model"))
sys.dont_write_bytecode = True
import reference  # noqa: E402

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        a, b = spec["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=DTYPES[spec["dtype"]]).reshape(spec["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def to_device(w, device, dtype):
    if isinstance(w, dict):
        return {k: to_device(v, device, dtype) for k, v in w.items()}
    if isinstance(w, list):
        return [to_device(v, device, dtype) for v in w]
    if isinstance(w, tuple):
        return tuple(to_device(v, device, dtype) for v in w)
    if torch.is_tensor(w):
        return w.to(device=device, dtype=dtype if w.is_floating_point() else w.dtype)
    return w


def _sdpa_plain(q, k, v, attn_mask=None):
    """Stand-in for F.scaled_dot_product_attention on PyTorch < 2.0 (CPU dry runs only)."""
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if attn_mask is not None:
        s = s + attn_mask
    return torch.softmax(s, dim=-1) @ v


SDPA = getattr(F, "scaled_dot_product_attention", _sdpa_plain)


def forward_fast(w, pixels, ids, mask):
    """bf16 + SDPA forward of the same architecture (same math as reference.forward)."""
    cfg = w["config"]
    V, T = w["vision"], w["text"]
    W, heads, P = cfg["vision"]["width"], cfg["vision"]["heads"], cfg["vision"]["patch"]
    B = pixels.shape[0]
    x = F.conv2d(pixels, V["patch_w"], V["patch_b"], stride=P).flatten(2).transpose(1, 2)
    x = torch.cat([V["cls_token"].expand(B, 1, W), x], dim=1) + V["pos_embed"]
    for blk in V["blocks"]:
        h = F.layer_norm(x, (W,), blk["ln1_w"], blk["ln1_b"], reference.VIT_LN_EPS)
        N = h.shape[1]
        q, k, v = F.linear(h, blk["qkv_w"], blk["qkv_b"]).reshape(B, N, 3, heads, W // heads).permute(2, 0, 3, 1, 4)
        o = SDPA(q, k, v).permute(0, 2, 1, 3).reshape(B, N, W)
        x = x + F.linear(o, blk["proj_w"], blk["proj_b"])
        h = F.layer_norm(x, (W,), blk["ln2_w"], blk["ln2_b"], reference.VIT_LN_EPS)
        x = x + F.linear(F.gelu(F.linear(h, blk["fc1_w"], blk["fc1_b"])), blk["fc2_w"], blk["fc2_b"])
    img = F.layer_norm(x, (W,), V["norm_w"], V["norm_b"], reference.VIT_LN_EPS)

    H, th = cfg["text"]["hidden"], cfg["text"]["heads"]
    L = ids.shape[1]
    y = F.layer_norm(T["word"][ids] + T["pos"][:L].unsqueeze(0), (H,), T["emb_ln_w"], T["emb_ln_b"], reference.BERT_LN_EPS)
    self_mask = ((1.0 - mask.to(y.dtype)) * reference.MASK_NEG)[:, None, None, :]

    def attn(a, hidden, kv, m):
        sh = lambda t: t.reshape(B, t.shape[1], th, H // th).transpose(1, 2)  # noqa: E731
        q = sh(F.linear(hidden, a["q_w"], a["q_b"]))
        k = sh(F.linear(kv, a["k_w"], a["k_b"]))
        v = sh(F.linear(kv, a["v_w"], a["v_b"]))
        c = SDPA(q, k, v, attn_mask=m).transpose(1, 2).reshape(B, hidden.shape[1], H)
        return F.layer_norm(F.linear(c, a["o_w"], a["o_b"]) + hidden, (H,), a["ln_w"], a["ln_b"], reference.BERT_LN_EPS)

    for layer in T["layers"]:
        y = attn(layer["attention"], y, y, self_mask)
        y = attn(layer["crossattention"], y, img, None)
        h = F.linear(F.gelu(F.linear(y, layer["int_w"], layer["int_b"])), layer["out_w"], layer["out_b"])
        y = F.layer_norm(h + y, (H,), layer["out_ln_w"], layer["out_ln_b"], reference.BERT_LN_EPS)
    r = y[:, 0, :]
    for weight, bias in w["mlp"]:
        r = F.linear(r, weight, bias)
    return (r[:, 0].float() - reference.REWARD_MEAN) / reference.REWARD_STD


def forward_fp32(w, pixels, ids, mask):
    """reference.forward on the device (reference.extended_mask builds the image mask on the CPU; patch it)."""
    image_embeds = reference.vision_forward(w, pixels)
    cfg = w["config"]["text"]
    T = w["text"]
    H, heads = cfg["hidden"], cfg["heads"]
    L = ids.shape[1]
    x = F.layer_norm(T["word"][ids] + T["pos"][:L].unsqueeze(0), (H,), T["emb_ln_w"], T["emb_ln_b"], reference.BERT_LN_EPS)
    self_mask = reference.extended_mask(mask, image_embeds.dtype)
    enc_mask = torch.zeros(image_embeds.shape[0], 1, 1, image_embeds.shape[1], device=pixels.device, dtype=image_embeds.dtype)
    for layer in T["layers"]:
        x = reference._bert_attention(layer["attention"], x, x, self_mask, heads)
        x = reference._bert_attention(layer["crossattention"], x, image_embeds, enc_mask, heads)
        h = F.linear(F.gelu(F.linear(x, layer["int_w"], layer["int_b"])), layer["out_w"], layer["out_b"])
        x = F.layer_norm(h + x, (H,), layer["out_ln_w"], layer["out_ln_b"], reference.BERT_LN_EPS)
    raw = reference.head_forward(w, x[:, 0, :])
    return (raw - reference.REWARD_MEAN) / reference.REWARD_STD


def timed(fn, seconds, sync):
    fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        sync()
        dt = time.perf_counter() - t0
        if dt >= seconds and n >= 3:
            return n, dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--refs")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batches", default="32,128")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    dev = torch.device(args.device)
    on_gpu = dev.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = json.load(open(os.path.join(args.model, "config.json")))["config"]
    sd = read_safetensors(os.path.join(args.model, "model.safetensors"))
    w_cpu = reference.load_weights(sd, cfg, torch.float32)
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    S = cfg["vision"]["image"]
    summary = {"device": torch.cuda.get_device_name(0) if on_gpu else "cpu", "torch": torch.__version__}

    w32 = to_device(w_cpu, dev, torch.float32)
    g = torch.Generator(device="cpu").manual_seed(7)
    with torch.no_grad():
        if args.refs:
            meta = json.load(open(os.path.join(args.refs, "refs.json")))
            raw = open(os.path.join(args.refs, "refs.bin"), "rb").read()

            def view(entry, dtype):
                return np.frombuffer(raw, dtype=dtype, count=int(np.prod(entry["shape"])), offset=entry["offset"]).reshape(entry["shape"])

            px = torch.from_numpy(view(meta["pixels"], np.float32).copy()).to(dev)
            ids = torch.from_numpy(view(meta["input_ids"], np.int32).astype(np.int64)).to(dev)
            mask = torch.from_numpy(view(meta["attention_mask"], np.int32).astype(np.int64)).to(dev)
            want = view(meta["rewards"], np.float32)
            got = forward_fp32(w32, px, ids, mask).float().cpu().numpy()
            diff = float(np.abs(got - want).max())
            print(json.dumps({"check": "torch-fp32-vs-ort-refs", "pairs": int(len(want)), "max_abs_diff": diff}), flush=True)
            summary["torch_fp32_vs_ort_max_abs_diff"] = diff

        # Upstream-style loop: one image per forward, fp32.
        px1 = torch.randn(1, 3, S, S, generator=g).to(dev)
        ids1 = torch.full((1, 35), 1037, dtype=torch.long, device=dev)
        ids1[0, 0], ids1[0, 10], ids1[0, 11:] = 101, 102, 0
        mask1 = (ids1 != 0).long()
        n, dt = timed(lambda: forward_fp32(w32, px1, ids1, mask1), args.seconds, sync)
        summary["fp32_loop_pairs_per_s"] = n / dt
        print(json.dumps({"mode": "fp32-loop", "batch": 1, "pairs_per_s": n / dt, "latency_ms": 1000 * dt / n}), flush=True)
        del w32
        if on_gpu:
            torch.cuda.empty_cache()
        # bf16 on the GPU; fp32 on a CPU dry run (old CPU builds lack bf16 convolutions)
        fast = torch.bfloat16 if on_gpu else torch.float32
        wbf = to_device(w_cpu, dev, fast)
        if args.refs:
            got = forward_fast(wbf, px.to(fast), ids, mask).float().cpu().numpy()
            diff = float(np.abs(got - want).max())
            print(json.dumps({"check": "torch-fast-vs-ort-refs", "dtype": str(fast), "pairs": int(len(want)), "max_abs_diff": diff}), flush=True)
            summary["torch_bf16_vs_ort_max_abs_diff"] = diff
        for B in [int(b) for b in args.batches.split(",") if b]:
            px = torch.randn(B, 3, S, S, generator=g).to(dev, fast)
            ids = ids1.expand(B, 35).contiguous()
            mask = mask1.expand(B, 35).contiguous()
            n, dt = timed(lambda: forward_fast(wbf, px, ids, mask), args.seconds, sync)
            summary["bf16_sdpa_pairs_per_s_b%d" % B] = B * n / dt
            print(json.dumps({"mode": "bf16-sdpa", "batch": B, "pairs_per_s": B * n / dt}), flush=True)
    print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    main()
