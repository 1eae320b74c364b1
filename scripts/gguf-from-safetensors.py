#!/usr/bin/env python3
"""Writes an F16 GGUF (llama architecture) from a Llama safetensors folder whose weights
are F16 (`shardpress synth --dtype f16`), for timing llama.cpp's `llama-quantize` on the
same shapes as a shardpress job (scripts/bench-vs-llama-quantize.sh). No tokenizer:
llama-quantize does not load the vocabulary (gguf-format.md §2.1), so the file is for
quantizing, not for running. Q/K rows are permuted as convert_hf_to_gguf.py does (§3.3);
norms are F32 (§3.2).

    scripts/gguf-from-safetensors.py MODEL_DIR OUT.gguf
"""
import json
import os
import struct
import sys

src, dst = sys.argv[1], sys.argv[2]
cfg = json.load(open(os.path.join(src, "config.json")))
if cfg.get("model_type") != "llama":
    sys.exit(f"{src}: model_type {cfg.get('model_type')!r}; this script writes llama only")
files = sorted(f for f in os.listdir(src) if f.endswith(".safetensors"))
tensors = {}  # HF name -> (file, dtype, shape, begin, end)
for f in files:
    path = os.path.join(src, f)
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        tensors[name] = (path, t["dtype"], t["shape"], 8 + n + b, 8 + n + e)

H, L = cfg["hidden_size"], cfg["num_hidden_layers"]
nq, nkv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
hd = cfg.get("head_dim", H // nq)
names = [("model.embed_tokens.weight", "token_embd.weight")]
for i in range(L):
    p, g = f"model.layers.{i}.", f"blk.{i}."
    names += [(p + "input_layernorm.weight", g + "attn_norm.weight"),
              (p + "self_attn.q_proj.weight", g + "attn_q.weight"),
              (p + "self_attn.k_proj.weight", g + "attn_k.weight"),
              (p + "self_attn.v_proj.weight", g + "attn_v.weight"),
              (p + "self_attn.o_proj.weight", g + "attn_output.weight"),
              (p + "post_attention_layernorm.weight", g + "ffn_norm.weight"),
              (p + "mlp.gate_proj.weight", g + "ffn_gate.weight"),
              (p + "mlp.up_proj.weight", g + "ffn_up.weight"),
              (p + "mlp.down_proj.weight", g + "ffn_down.weight")]
names.append(("model.norm.weight", "output_norm.weight"))
if "lm_head.weight" in tensors:
    names.append(("lm_head.weight", "output.weight"))


def read(hf):
    path, dtype, shape, b, e = tensors[hf]
    if dtype != "F16":
        sys.exit(f"{hf} is {dtype}: write the model with `shardpress synth --dtype f16`")
    with open(path, "rb") as fh:
        fh.seek(b)
        return fh.read(e - b), shape


def permute(data, shape, heads):  # GGUF row h*hd + 2i + j = HF row h*hd + j*(hd/2) + i
    rows, row_bytes = shape[0], 2 * shape[1]
    d = rows // heads
    out = bytearray(len(data))
    for h in range(heads):
        for i in range(d // 2):
            for j in (0, 1):
                s = h * d + j * (d // 2) + i
                t = h * d + 2 * i + j
                out[t * row_bytes:(t + 1) * row_bytes] = data[s * row_bytes:(s + 1) * row_bytes]
    return bytes(out)


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


kv = [("general.architecture", 8, gstr("llama")), ("general.name", 8, gstr(os.path.basename(src.rstrip("/")))),
      ("llama.block_count", 4, struct.pack("<I", L)),
      ("llama.context_length", 4, struct.pack("<I", cfg.get("max_position_embeddings", 2048))),
      ("llama.embedding_length", 4, struct.pack("<I", H)),
      ("llama.feed_forward_length", 4, struct.pack("<I", cfg["intermediate_size"])),
      ("llama.attention.head_count", 4, struct.pack("<I", nq)),
      ("llama.attention.head_count_kv", 4, struct.pack("<I", nkv)),
      ("llama.rope.freq_base", 6, struct.pack("<f", cfg.get("rope_theta", 10000.0))),
      ("llama.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", cfg.get("rms_norm_eps", 1e-6))),
      ("llama.rope.dimension_count", 4, struct.pack("<I", hd)),
      ("llama.vocab_size", 4, struct.pack("<I", cfg["vocab_size"])),
      ("general.file_type", 4, struct.pack("<I", 1)),
      ("general.quantization_version", 4, struct.pack("<I", 2))]

PAD = 32
infos, plan, off = [], [], 0
for hf, gg in names:
    _, _, shape, b, e = tensors[hf]
    f32 = len(shape) == 1
    nbytes = (e - b) * (2 if f32 else 1)
    ne = list(reversed(shape))
    infos.append(gstr(gg) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", x) for x in ne) +
                 struct.pack("<IQ", 0 if f32 else 1, off))
    plan.append((hf, gg, f32, nbytes))
    off += (nbytes + PAD - 1) // PAD * PAD

with open(dst + ".tmp", "wb") as out:
    head = b"GGUF" + struct.pack("<IQQ", 3, len(names), len(kv))
    head += b"".join(gstr(k) + struct.pack("<i", t) + v for k, t, v in kv) + b"".join(infos)
    out.write(head + b"\0" * ((PAD - len(head) % PAD) % PAD))
    for hf, gg, f32, nbytes in plan:
        data, shape = read(hf)
        if f32:
            data = struct.pack(f"<{len(data) // 2}f", *struct.unpack(f"<{len(data) // 2}e", data))
        elif gg.endswith("attn_q.weight"):
            data = permute(data, shape, nq)
        elif gg.endswith("attn_k.weight"):
            data = permute(data, shape, nkv)
        out.write(data + b"\0" * ((PAD - len(data) % PAD) % PAD))
os.replace(dst + ".tmp", dst)
print(f"{dst}: {len(names)} tensors, {os.path.getsize(dst)} bytes")
