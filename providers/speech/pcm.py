"""PCM16 primitives shared by the speech wires and the voice session: G.711, resampling, WAV.

Cloud engines decode a vendor's G.711 stream, resample a vendor's fixed rate and upload segments
as WAV files; the voice package converts client and telephony audio with the same primitives
(voice/audio.py builds its formats and edge conversions on them). They live here, below both,
because providers never imports voice.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

Law = Literal["ulaw", "alaw"]
"""The two G.711 companding laws (8-bit codes, telephony's 8 kHz audio)."""


class AudioFormatError(ValueError):
    """Audio bytes that cannot be what their format says (e.g. half a PCM16 sample)."""


def _build_ulaw_tables() -> tuple[npt.NDArray[np.int16], npt.NDArray[np.uint8]]:
    # The ITU-T G.711 reference algorithm (as in Sun's g711.c and CPython's audioop),
    # vectorised over every code and every int16 value once at import.
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = (((codes & 0x0F) << 3) + 0x84) << ((codes & 0x70) >> 4)
    decode = np.where(codes & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)

    linear = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(linear < 0, 0x7F, 0xFF)
    value = np.minimum(np.abs(linear), 8159) + (0x84 >> 2)
    segment_ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    segment = np.searchsorted(segment_ends, value, side="left")
    code = np.where(segment >= 8, 0x7F, (segment << 4) | ((value >> (segment + 1)) & 0x0F))
    encoded = (code ^ mask) & 0xFF
    return decode, _by_uint16(encoded)


def _build_alaw_tables() -> tuple[npt.NDArray[np.int16], npt.NDArray[np.uint8]]:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (codes & 0x70) >> 4
    base = (codes & 0x0F) << 4
    magnitude = np.where(segment == 0, base + 8, (base + 0x108) << np.maximum(segment - 1, 0))
    decode = np.where(codes & 0x80, magnitude, -magnitude).astype(np.int16)

    linear = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(linear >= 0, 0xD5, 0x55)
    value = np.where(linear >= 0, linear, -linear - 1)
    segment_ends = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    seg = np.searchsorted(segment_ends, value, side="left")
    shift = np.where(seg < 2, 1, seg)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((value >> shift) & 0x0F))
    encoded = (code ^ mask) & 0xFF
    return decode, _by_uint16(encoded)


def _by_uint16(encoded_by_int16: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """Reorder a table built for -32768..32767 so it is indexed by the sample's uint16 bits."""
    return np.roll(encoded_by_int16.astype(np.uint8), -32768)


_ULAW_DECODE, _ULAW_ENCODE = _build_ulaw_tables()
_ALAW_DECODE, _ALAW_ENCODE = _build_alaw_tables()


_ULAW_DECODE, _ULAW_ENCODE = _build_ulaw_tables()
_ALAW_DECODE, _ALAW_ENCODE = _build_alaw_tables()


def pcm16_samples(pcm: bytes, channels: int = 1) -> npt.NDArray[np.int16]:
    """`pcm` as int16 samples; `AudioFormatError` unless it holds whole `channels`-channel frames."""
    if len(pcm) % (2 * channels):
        raise AudioFormatError(
            f"PCM16 data of {len(pcm)} bytes is not a whole number of {channels}-channel frames"
        )
    return np.frombuffer(pcm, dtype="<i2")


def g711_decode(data: bytes, law: Law) -> bytes:
    """G.711 codes as PCM16 little-endian at the same rate and channel count."""
    table = _ULAW_DECODE if law == "ulaw" else _ALAW_DECODE
    return table[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def g711_encode(pcm: bytes, law: Law, *, channels: int = 1) -> bytes:
    """PCM16 little-endian samples as G.711 codes (rate and channels unchanged)."""
    table = _ULAW_ENCODE if law == "ulaw" else _ALAW_ENCODE
    return table[pcm16_samples(pcm, channels).view(np.uint16)].tobytes()


class Resampler:
    """A streaming PCM16 mono resampler: chunk boundaries leave no seams.

    Feed any byte chunks (even odd-sized ones; a dangling byte waits for its partner) to
    `process`, then call `flush` once at the end of the stream to drain the filter's tail.
    One instance per stream: it keeps filter state between calls.
    """

    def __init__(self, src_rate: int, dst_rate: int, *, quality: str = "HQ") -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise AudioFormatError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._pending = b""
        self._stream = (
            soxr.ResampleStream(src_rate, dst_rate, 1, dtype="int16", quality=quality)
            if src_rate != dst_rate
            else None
        )

    def process(self, pcm: bytes) -> bytes:
        data = self._pending + pcm if self._pending else pcm
        whole = len(data) - len(data) % 2
        self._pending = data[whole:]
        if self._stream is None:
            return bytes(data[:whole])
        if not whole:
            return b""
        samples = np.frombuffer(data[:whole], dtype="<i2")
        out: npt.NDArray[np.int16] = self._stream.resample_chunk(samples)
        return out.astype("<i2", copy=False).tobytes()

    def flush(self) -> bytes:
        """Drain the resampler at the end of the stream; a lone trailing byte is dropped."""
        self._pending = b""
        if self._stream is None:
            return b""
        out: npt.NDArray[np.int16] = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        return out.astype("<i2", copy=False).tobytes()


def wav_bytes(pcm: bytes, rate: int) -> bytes:
    """A PCM16 mono WAV file holding `pcm`."""
    buffer = io.BytesIO()
    soundfile.write(buffer, pcm16_samples(pcm), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
