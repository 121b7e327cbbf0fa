"""Build a tiny Llama-style tokenizer (and, with torch, a random-weight model) offline.

    python -m tools.tiny_llama OUT_DIR [--model]
    python -m tools.tiny_llama OUT_DIR --lora MODEL_DIR [--seed N]

The tokenizer is a byte-level BPE trained with the ``tokenizers`` library on
text this project generates, with a Llama-3-shaped chat template. Nothing is
downloaded. ``--model`` adds a small random-weight LlamaForCausalLM (needs torch).
``--lora`` builds a random-weight LoRA adapter (rank 8, on q_proj and v_proj) for
the model in MODEL_DIR instead, in PEFT's layout (as vLLM's ``--lora-modules`` reads it).
"""

from __future__ import annotations

import argparse
import random
import sys

from prompts.text import join, words

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def build_tokenizer(out_dir: str, vocab_size: int = 2000) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [join(words(random.Random(i), 300)) for i in range(400)]
    corpus += [f"Request {i}-{j}: Shared context {j}." for i in range(50) for j in range(20)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<|end_of_text|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)


def build_model(out_dir: str, vocab_size: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=0,
        eos_token_id=4,
        tie_word_embeddings=True,
        torch_dtype="bfloat16",
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out_dir)


LORA_RANK = 8


def build_lora(out_dir: str, model_dir: str, seed: int) -> None:
    import json
    import os

    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    head = config.hidden_size // config.num_attention_heads
    outputs = {"q_proj": config.num_attention_heads * head, "v_proj": config.num_key_value_heads * head}
    torch.manual_seed(seed)
    tensors = {}
    for layer in range(config.num_hidden_layers):
        for name, width in outputs.items():
            key = f"base_model.model.model.layers.{layer}.self_attn.{name}"
            tensors[f"{key}.lora_A.weight"] = (torch.randn(LORA_RANK, config.hidden_size) * 0.02).to(torch.bfloat16)
            tensors[f"{key}.lora_B.weight"] = (torch.randn(width, LORA_RANK) * 0.02).to(torch.bfloat16)
    os.makedirs(out_dir, exist_ok=True)
    save_file(tensors, os.path.join(out_dir, "adapter_model.safetensors"))
    adapter = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": LORA_RANK,
        "lora_alpha": 2 * LORA_RANK,
        "target_modules": list(outputs),
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "base_model_name_or_path": os.path.abspath(model_dir),
        "modules_to_save": None,
    }
    with open(os.path.join(out_dir, "adapter_config.json"), "w", encoding="utf-8") as f:
        json.dump(adapter, f, indent=2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.tiny_llama", description=__doc__)
    ap.add_argument("out_dir")
    ap.add_argument("--model", action="store_true", help="also build a random-weight model (needs torch)")
    ap.add_argument("--lora", metavar="MODEL_DIR", help="build a LoRA adapter for this model instead (needs torch)")
    ap.add_argument("--seed", type=int, default=1, help="the adapter's random weights")
    args = ap.parse_args(argv)
    if args.lora:
        build_lora(args.out_dir, args.lora, args.seed)
        print(f"built a rank-{LORA_RANK} LoRA adapter in {args.out_dir}")
        return 0
    build_tokenizer(args.out_dir)
    if args.model:
        from transformers import AutoTokenizer

        build_model(args.out_dir, len(AutoTokenizer.from_pretrained(args.out_dir)))
    print(f"built {'model and ' if args.model else ''}tokenizer in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
