"""A block-hash prefix cache, as vLLM's: only whole blocks hit, LRU eviction."""

from __future__ import annotations

from collections import OrderedDict


class PrefixCache:
    def __init__(self, block_size: int = 16, capacity_blocks: int = 100_000) -> None:
        self.block_size = block_size
        self.capacity = capacity_blocks
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def block_hashes(self, tokens: list[int], salt: str = "") -> list[int]:
        """Each whole block's hash, chained; ``salt`` (a LoRA adapter's name) apart, as vLLM keys blocks by
        adapter: the same tokens under another adapter never hit."""
        hashes = []
        parent = hash(salt) if salt else 0
        bs = self.block_size
        for i in range(0, len(tokens) - bs + 1, bs):
            parent = hash((parent, tuple(tokens[i : i + bs])))
            hashes.append(parent)
        return hashes

    def lookup(self, hashes: list[int], prompt_len: int) -> int:
        """Cached tokens for a prompt: leading blocks present, never the whole prompt."""
        hit = 0
        for h in hashes:
            if h not in self._blocks:
                break
            self._blocks.move_to_end(h)
            hit += 1
        cached = hit * self.block_size
        # the last token is always computed
        if cached >= prompt_len:
            cached = ((prompt_len - 1) // self.block_size) * self.block_size
        return cached

    def insert(self, hashes: list[int]) -> None:
        blocks = self._blocks
        for h in hashes:
            blocks[h] = None
            blocks.move_to_end(h)
        while len(blocks) > self.capacity:
            blocks.popitem(last=False)

    def reset(self) -> None:
        self._blocks.clear()

    def __len__(self) -> int:
        return len(self._blocks)
