"""The empty-prompt conditioning shared by every method, computed once from a CLIP text encoder."""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import CLIPTextModel, CLIPTokenizer


@torch.no_grad()
def empty_prompt_embedding(pretrained_dir: str | Path, pad: bool = False,
                           text_encoder_subfolder: str = "text_encoder",
                           tokenizer_subfolder: str = "tokenizer") -> torch.Tensor:
    """Encode the empty prompt: [1, 2, D] unpadded (Marigold, E2E-FT and diffusers'
    MarigoldDepthPipeline), or [1, 77, D] padded to the tokenizer's length (SD2 pipelines, Lotus).

    The text encoder is loaded, used once and dropped; only the embedding is kept.
    """
    tokenizer = CLIPTokenizer.from_pretrained(pretrained_dir, subfolder=tokenizer_subfolder)
    encoder = CLIPTextModel.from_pretrained(pretrained_dir, subfolder=text_encoder_subfolder)
    tokens = tokenizer("", padding="max_length" if pad else "do_not_pad",
                       max_length=tokenizer.model_max_length, truncation=True,
                       return_tensors="pt")
    return encoder(tokens.input_ids)[0].float()
