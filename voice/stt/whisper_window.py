"""Whisper decoding over an encoder window fitted to the audio, not a fixed 30 s one.

faster-whisper's `transcribe` pads every clip's features to 30 s (3,000 frames) before the
encoder, and the encoder is most of the cost: on 2 shared vCPUs, Whisper base took 0.62-0.78 s
to encode any clip, then ~0.2 s to decode the words of a 4 s sentence. CTranslate2's encoder
takes fewer frames just as well (it slices its position table), and a window rounded up to
the next whole second of the clip took 0.05-0.1 s for the same sentence with the same words.

`decode_fitted` runs one greedy pass over such a window. It returns None where that pass is
not to be trusted and the caller should use the full-window `transcribe` instead: clips
longer than 30 s (the full path chunks them), and a repetitive hypothesis (the compression
ratio Whisper's own fallback uses, or words said twice over), which a cut window can provoke. A pass that Whisper
itself reads as no speech (its no-speech probability high and the words unlikely) is "".
Pure of I/O; it runs in the engine's worker thread.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

FRAMES_PER_SECOND = 100
MAX_FRAMES = 3000
MARGIN_FRAMES = 200
"""Empty frames after the clip's last second. Whisper sees its training windows end in such
frames; with none, it ran on past a sentence's end ("... a bottle of water. I would like to
order ..."), with 1-4 s the test set's words were those of the full window."""
REPEATED_WORDS = 5
"""A run of this many words said twice is taken for a loop, and the full window decides."""
COMPRESSION_RATIO_LIMIT = 2.4
NO_SPEECH_PROBABILITY = 0.6
LOG_PROB_THRESHOLD = -1.0
TOKENS_PER_SECOND = 12
"""A ceiling on new tokens (English speech is 3-5 a second), so a runaway pass stops early."""


def window_frames(feature_frames: int) -> int | None:
    """The encoder window for features of `feature_frames`: whole seconds plus the margin,
    at most 30 s; None beyond 30 s (the full path chunks such clips)."""
    if feature_frames > MAX_FRAMES:
        return None
    seconds = max(1, math.ceil(feature_frames / FRAMES_PER_SECOND))
    return min(MAX_FRAMES, seconds * FRAMES_PER_SECOND + MARGIN_FRAMES)


def compression_ratio(text: str) -> float:
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


def looks_looped(text: str) -> bool:
    """Whisper's own test (a compression ratio over 2.4) or a run of words said twice."""
    if compression_ratio(text) > COMPRESSION_RATIO_LIMIT:
        return True
    words = text.lower().split()
    runs = [tuple(words[i : i + REPEATED_WORDS]) for i in range(len(words) - REPEATED_WORDS + 1)]
    return len(set(runs)) < len(runs)


def prompt_tokens(tokenizer: Any, previous: str | None, max_length: int) -> list[int]:
    """`<|startofprev|> previous <|sot|> lang transcribe <|notimestamps|>`, as Whisper's own."""
    tokens: list[int] = []
    if previous:
        tokens = [tokenizer.sot_prev, *tokenizer.encode(" " + previous.strip())[-(max_length // 2 - 1) :]]
    return [*tokens, *tokenizer.sot_sequence, tokenizer.no_timestamps]


def decode_fitted(
    model: Any, audio: np.ndarray, language: str | None, *, beam_size: int = 1, previous: str | None = None
) -> tuple[str, str | None] | None:
    """One pass of `model` (a faster_whisper.WhisperModel) over `audio` (float32, 16 kHz)."""
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    features = model.feature_extractor(audio)
    frames = window_frames(features.shape[-1])
    if frames is None:
        return None
    window = np.zeros((features.shape[0], frames), dtype=np.float32)
    used = min(frames, features.shape[-1])
    window[:, :used] = features[:, :used]
    encoded = model.encode(window)
    if language is None:
        if model.model.is_multilingual:
            language = model.model.detect_language(encoded)[0][0][0][2:-2]
        else:
            language = "en"
    tokenizer = Tokenizer(
        model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
    )
    prompt = prompt_tokens(tokenizer, previous, model.max_length)
    seconds = len(audio) / 16_000
    result = model.model.generate(
        encoded,
        [prompt],
        beam_size=beam_size,
        max_length=min(model.max_length, len(prompt) + 8 + math.ceil(TOKENS_PER_SECOND * seconds)),
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, (-1,)),
    )[0]
    tokens = result.sequences_ids[0]
    text = str(tokenizer.decode(tokens)).strip()
    avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
    if result.no_speech_prob > NO_SPEECH_PROBABILITY and avg_logprob < LOG_PROB_THRESHOLD:
        return "", language
    if looks_looped(text):
        return None
    return text, language
