# The peer cases for bench/matrix.ts' cells that ../shared/peers/bench_peers.py does not carry itself:
#   CASES_EXTRA=bench/peerCases.py [LIGER=1] python3 bench_peers.py OUT.json CASE ...
# Shapes are the config.json values bench/models.ts gives each family; LoRA methods are named as
# bench_peers' LORA table names them ("qlora…" methods load the base in 4-bit, as it does).
import __main__ as peers
import torch
from transformers import GemmaConfig, GPT2Config, MistralConfig, Phi3Config

SHAPES_EXTRA = {
    "gemma-2b": lambda: GemmaConfig(vocab_size=256000, hidden_size=2048, intermediate_size=16384,
        num_hidden_layers=18, num_attention_heads=8, num_key_value_heads=1, head_dim=256,
        max_position_embeddings=8192, rms_norm_eps=1e-6, rope_theta=10000.0,
        hidden_activation="gelu_pytorch_tanh"),
    "phi-3-mini": lambda: Phi3Config(vocab_size=32064, hidden_size=3072, intermediate_size=8192,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
        original_max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0, sliding_window=2047,
        tie_word_embeddings=False),
    "mistral-7b": lambda: MistralConfig(vocab_size=32000, hidden_size=4096, intermediate_size=14336,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768,
        rms_norm_eps=1e-5, rope_theta=10000.0, sliding_window=4096, tie_word_embeddings=False),
    "gpt2": lambda: GPT2Config(n_embd=768, n_layer=12, n_head=12, n_positions=1024, n_ctx=1024,
        vocab_size=50257, layer_norm_epsilon=1e-5, activation_function="gelu_new"),
}

_base = dict(r=16, lora_alpha=32, lora_dropout=0.0, use_dora=False, target_modules=peers.ALL_LINEAR)
LORA_EXTRA = {
    "lora_r64": {**_base, "r": 64, "lora_alpha": 128},
    "lora_qv_rslora": {**_base, "target_modules": ["q_proj", "v_proj"], "use_rslora": True},
    "lora_layers": {**_base, "layers_to_transform": [0, 1, 2, 3, 20, 21, 22, 23]},
    "lora_phi3": {**_base, "target_modules": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]},
    # GPT-2's Conv1D modules (c_proj is both the attention's output and the MLP's down projection)
    "lora_gpt2": {**_base, "target_modules": ["c_attn", "c_proj", "c_fc"], "fan_in_fan_out": True},
    "qlora_dropout": {**_base, "lora_dropout": 0.05},
}

# (shape, method, batch, seq, checkpointing) — the matrix cell each one stands beside is in bench/matrix.ts
CASES_EXTRA = [
    ("llama-3.2-1b", "lora_r64", 8, 1024, False),
    ("llama-3.2-1b", "lora_qv_rslora", 8, 1024, False),
    ("qwen2.5-0.5b", "lora_layers", 8, 1024, False),
    ("gemma-2b", "lora", 4, 1024, False),
    ("phi-3-mini", "lora_phi3", 4, 1024, True),
    ("gpt2", "lora_gpt2", 8, 1024, False),
    ("llama-3.2-1b", "qlora_dropout", 8, 1024, False),
    ("llama-3.2-1b", "direft_dropout", 8, 1024, False),
    ("llama-3.1-8b", "loreft", 4, 1024, False),  # beside bench_peers' checkpointed case: does pyreft checkpoint?
    ("llama-3.1-8b", "loreft_train", 4, 1024, True),
    ("mistral-7b", "qlora", 4, 1024, True),  # last: its 4-bit load goes through a 14 GB folder on disk
]

_run_case = peers.run_case


def loreft_in_train_mode(shape, batch, seq, ckpt, steps, warmup):
    """bench_peers' LoReFT case with the base model put back in train mode after pyreft wraps it.

    pyvene's IntervenableModel.__init__ calls disable_model_gradients(), which puts the base model
    in eval mode, and transformers checkpoints only in train mode: bench_peers' "ckpt" LoReFT case
    therefore keeps every activation. This one checkpoints, as the case's name says.
    """
    import pyreft
    wrap = pyreft.get_reft_model

    def wrap_in_train_mode(model, config, *args, **kwargs):
        m = wrap(model, config, *args, **kwargs)
        m.model.train()
        return m
    pyreft.get_reft_model = wrap_in_train_mode
    try:
        r = _run_case(shape, "loreft", batch, seq, ckpt, steps, warmup)
    finally:
        pyreft.get_reft_model = wrap
    return {**r, "method": "loreft_train"}


def run_case(shape, method, batch, seq, ckpt, steps=10, warmup=3):
    """bench_peers' run_case, plus pyreft's DiReFT with dropout 0.05 (rank 4, every layer, f7+l7)
    and LoReFT with the base in train mode (loreft_train)."""
    if method == "loreft_train":
        return loreft_in_train_mode(shape, batch, seq, ckpt, steps, warmup)
    if method != "direft_dropout":
        return _run_case(shape, method, batch, seq, ckpt, steps, warmup)
    import time
    import pyreft
    torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    model = peers.build(shape)
    model.train()
    H, layers = model.config.hidden_size, list(range(model.config.num_hidden_layers))
    reps = [{"layer": l, "component": "block_output", "low_rank_dimension": 4,
             "intervention": pyreft.DireftIntervention(embed_dim=H, low_rank_dimension=4, dropout=0.05,
                                                       dtype=torch.bfloat16)} for l in layers]
    m = pyreft.get_reft_model(model, pyreft.ReftConfig(representations=reps))
    m.set_device("cuda")
    ids = torch.randint(0, model.config.vocab_size, (batch, seq), device="cuda")
    pos = list(range(7)) + list(range(seq - 7, seq))
    locs = [[pos] * batch for _ in layers]
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = m({"input_ids": ids}, unit_locations={"sources->base": (None, locs)}, labels=ids)[1].loss
        loss.backward()
        opt.step()
        return loss
    for _ in range(warmup):
        step()
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    torch.cuda.synchronize(); dt = (time.perf_counter() - t0) / steps
    return {"liger": peers.LIGER, "shape": shape, "method": method, "batch": batch, "seq": seq, "grad_ckpt": ckpt,
            "params": sum(p.numel() for p in model.parameters()), "trainable": sum(p.numel() for p in params),
            "step_s": dt, "tokens_per_s": batch * seq / dt, "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
            "loss": float(loss)}


peers.run_case = run_case
