"""Build a tiny Llama-style tokenizer (and, with torch, a random-weight model) offline.

    python -m tools.tiny_llama OUT_DIR [--model]

The tokenizer is a byte-level BPE trained with the ``tokenizers`` library on
text this project generates, with a Llama-3-shaped chat template. Nothing is
downloaded. ``--model`` adds a small random-weight LlamaForCausalLM (needs torch).
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
        vocab_size=vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, bos_token_id=0, eos_token_id=4, tie_word_embeddings=True,
        torch_dtype="bfloat16",
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.tiny_llama", description=__doc__)
    ap.add_argument("out_dir")
    ap.add_argument("--model", action="store_true", help="also build a random-weight model (needs torch)")
    args = ap.parse_args(argv)
    build_tokenizer(args.out_dir)
    if args.model:
        from transformers import AutoTokenizer

        build_model(args.out_dir, len(AutoTokenizer.from_pretrained(args.out_dir)))
    print(f"built {'model and ' if args.model else ''}tokenizer in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
