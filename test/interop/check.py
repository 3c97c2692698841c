"""Loads typetune's exports with the Python stack (transformers, PEFT, torch) and compares
logits with what typetune computed for the same batch (test/interop/prepare.ts wrote them).
ReFT folders are applied by a few lines of torch that follow pyreft's LoreftIntervention
(pyreft itself is not installed on the GPU machine): torch.load(weights_only=True) of each
intkey_*.bin, then h + (act(W h + b) − R h) Rᵀ at the intervened positions of block_output.

Run on the GPU machine: python3 test/interop/check.py .interop models/tiny-llama
"""
import json, os, sys, torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from peft import PeftModel

root, base_dir = sys.argv[1], sys.argv[2]
failures = 0

def compare(name, logits):
    global failures
    exp = load_file(os.path.join(root, name, "expected.safetensors"))
    mask = exp["attention_mask"].bool()
    ours, ref = exp["logits"][mask], logits.float()[mask]
    err = ((ours - ref).abs().max() / ref.abs().max()).item()
    ok = err < 1e-4
    failures += 0 if ok else 1
    print(f"{name:16s} max rel err {err:.2e} {'ok' if ok else 'FAIL'}")

def batch(name):
    exp = load_file(os.path.join(root, name, "expected.safetensors"))
    return exp["input_ids"].long(), exp["attention_mask"].long(), exp["positions"].long()

def base():
    return AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager").eval()

with torch.no_grad():
    for name in ["lora", "qlora"]:
        ids, mask, _ = batch(f"{name}-peft")
        model = PeftModel.from_pretrained(base(), os.path.join(root, name, "run", "peft")).eval()
        compare(f"{name}-peft", model(input_ids=ids, attention_mask=mask).logits)

    ids, mask, _ = batch("qlora-merged")
    merged = AutoModelForCausalLM.from_pretrained(os.path.join(root, "qlora", "run", "merged"), dtype=torch.float32, attn_implementation="eager").eval()
    compare("qlora-merged", merged(input_ids=ids, attention_mask=mask).logits)

    ids, mask, positions = batch("loreft-pyreft")
    folder = os.path.join(root, "loreft", "run", "pyreft")
    config = json.load(open(os.path.join(folder, "config.json")))
    model = base()
    hooks = []
    groups = {}
    for key, rep in zip(config["sorted_keys"], config["representations"]):
        layer, group = rep[0], int(key.rsplit("#", 1)[1])
        groups.setdefault(layer, []).append((group, torch.load(os.path.join(folder, f"intkey_{key}.bin"), weights_only=True)))
    for layer, items in groups.items():
        per_group = positions.shape[1] // len(items)
        def hook(module, args, output, items=items, per_group=per_group):
            h = output[0] if isinstance(output, tuple) else output
            h = h.clone()
            for group, state in items:
                pos = positions[:, group * per_group:(group + 1) * per_group]
                for b in range(h.shape[0]):
                    x = h[b, pos[b]]
                    rotated = x @ state["rotate_layer"]
                    source = x @ state["weight"].T + state["bias"]
                    h[b, pos[b]] = x + (source - rotated) @ state["rotate_layer"].T
            return (h, *output[1:]) if isinstance(output, tuple) else h
        hooks.append(model.model.layers[layer].register_forward_hook(hook))
    compare("loreft-pyreft", model(input_ids=ids, attention_mask=mask).logits)

sys.exit(1 if failures else 0)
