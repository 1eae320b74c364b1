#!/usr/bin/env python3
"""Writes a header-only EXAONE-4.0-32B folder: config.json and a model.safetensors whose
data section is sparse (no disk used, reads as zeros). For `shardpress inspect` and
`shardpress simulate`, which read only the config and the tensor headers.

    scripts/exaone32b-headers.py OUT_DIR [LAYERS=64]
"""
import json
import os
import struct
import sys

out = sys.argv[1]
layers = int(sys.argv[2]) if len(sys.argv) > 2 else 64
H, I, V, HD, NH, NKV = 5120, 27392, 102400, 128, 40, 8
os.makedirs(out, exist_ok=True)
config = {"architectures": ["Exaone4ForCausalLM"], "model_type": "exaone4", "hidden_size": H,
          "intermediate_size": I, "num_hidden_layers": layers, "num_attention_heads": NH,
          "num_key_value_heads": NKV, "head_dim": HD, "vocab_size": V, "tie_word_embeddings": False,
          "sliding_window": 4096, "sliding_window_pattern": "LLLG", "torch_dtype": "bfloat16"}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
tensors = [("model.embed_tokens.weight", [V, H])]
for i in range(layers):
    p = f"model.layers.{i}."
    tensors += [(p + "self_attn.q_proj.weight", [NH * HD, H]), (p + "self_attn.k_proj.weight", [NKV * HD, H]),
                (p + "self_attn.v_proj.weight", [NKV * HD, H]), (p + "self_attn.o_proj.weight", [H, NH * HD]),
                (p + "self_attn.q_norm.weight", [HD]), (p + "self_attn.k_norm.weight", [HD]),
                (p + "post_attention_layernorm.weight", [H]), (p + "mlp.gate_proj.weight", [I, H]),
                (p + "mlp.up_proj.weight", [I, H]), (p + "mlp.down_proj.weight", [H, I]),
                (p + "post_feedforward_layernorm.weight", [H])]
tensors += [("model.norm.weight", [H]), ("lm_head.weight", [V, H])]
header, pos = {}, 0
for name, shape in tensors:
    n = 2
    for d in shape:
        n *= d
    header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [pos, pos + n]}
    pos += n
text = json.dumps(header).encode()
path = os.path.join(out, "model.safetensors")
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    f.truncate(8 + len(text) + pos)
print(f"{out}: EXAONE-4.0-32B shapes, {layers} layers, {pos / 1e9:.1f} GB of bf16 weights (sparse: no disk used)")
