"""The internal offline TTS: espeak-ng as a subprocess, streamed.

`espeak-ng --stdout` writes a WAV (22050 Hz mono s16) as it synthesises, so audio is
forwarded chunk by chunk past the 44-byte header: the first audio leaves ~15 ms after the
text goes in, long before a paragraph is finished. Text goes through stdin, never argv, so
it cannot be mistaken for an option. Closing the stream or cancelling the consumer kills
the process. The engine is free to run and bills to the platform.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import struct
from collections.abc import AsyncIterator

from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from providers.speech.base import TTSEngine

logger = logging.getLogger(__name__)

ESPEAK_SAMPLE_RATE = 22_050
_WAV_HEADER_BYTES = 44


class EspeakTTS(TTSEngine):
    """espeak-ng with a default `voice` (e.g. "en-us", "en-gb+f3") and speaking rate.

    A per-request voice is used only if espeak-ng knows it (its language codes and voice
    files, optionally with a `+variant`); anything else, such as a cloud engine's voice id
    reaching this engine through a fallback chain, falls back to the default voice. Unknown
    voices would otherwise crash espeak-ng.
    """

    sample_rate = ESPEAK_SAMPLE_RATE
    billing_source = BillingSource.PLATFORM

    def __init__(
        self,
        *,
        voice: str = "en-us",
        words_per_minute: int = 160,
        executable: str = "espeak-ng",
        read_size: int = 4096,
        name: str = "internal:espeak",
    ) -> None:
        if not 80 <= words_per_minute <= 500:
            raise ValueError(f"words_per_minute must be within 80-500, got {words_per_minute}")
        self.name = name
        self.voice = voice
        self.words_per_minute = words_per_minute
        self.read_size = read_size
        self._executable = shutil.which(executable)
        self._voices: frozenset[str] | None = None
        self._variants: frozenset[str] = frozenset()

    async def _synthesize(self, text: str, voice: str | None) -> AsyncIterator[bytes]:
        executable = self._require_executable()
        chosen = await self._choose_voice(voice)
        process = await asyncio.create_subprocess_exec(
            executable,
            *("-v", chosen, "-s", str(self.words_per_minute), "-b", "1", "--stdout"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(text.encode("utf-8"))
            await process.stdin.drain()
            process.stdin.close()
            try:
                header = await process.stdout.readexactly(_WAV_HEADER_BYTES)
            except asyncio.IncompleteReadError:
                code = await process.wait()
                raise self._failure(f"espeak-ng produced no audio (exit {code})") from None
            self._check_header(header)
            while chunk := await process.stdout.read(self.read_size):
                yield chunk
            code = await process.wait()
            if code != 0:
                raise self._failure(f"espeak-ng exited with {code}")
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    def _require_executable(self) -> str:
        if self._executable is None:
            raise ProviderError(ErrorClass.NOT_FOUND, "espeak-ng is not installed", provider=self.name)
        return self._executable

    async def _choose_voice(self, voice: str | None) -> str:
        if voice is None or voice == self.voice:
            return self.voice
        known = await self._known_voices()
        base, _, variant = voice.partition("+")
        if base in known and (not variant or variant in self._variants):
            return voice
        logger.debug("unknown espeak-ng voice, using the default", extra={"engine": self.name})
        return self.voice

    async def _known_voices(self) -> frozenset[str]:
        # Listed once; two first requests racing here merely list twice.
        if self._voices is None:
            variants = frozenset(v.removeprefix("!v/") for v in await self._list("--voices=variant"))
            voices = frozenset(await self._list("--voices"))
            self._variants, self._voices = variants, voices
        return self._voices

    async def _list(self, option: str) -> list[str]:
        process = await asyncio.create_subprocess_exec(
            self._require_executable(),
            option,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await process.communicate()
        return parse_voice_list(out.decode("utf-8", "replace"))

    def _check_header(self, header: bytes) -> None:
        if header[:4] != b"RIFF" or header[8:12] != b"WAVE" or header[36:40] != b"data":
            raise self._failure("espeak-ng did not write a WAV header")
        channels, rate = struct.unpack_from("<HI", header, 22)
        bits = struct.unpack_from("<H", header, 34)[0]
        if (channels, rate, bits) != (1, self.sample_rate, 16):
            raise self._failure(f"espeak-ng wrote {channels} ch {rate} Hz {bits}-bit audio")

    def _failure(self, message: str) -> ProviderError:
        return ProviderError(ErrorClass.SERVER_ERROR, message, provider=self.name)


def parse_voice_list(listing: str) -> list[str]:
    """Voice names from `espeak-ng --voices` output: each line's language code and file.

    Columns: priority, language, age/gender, name, file, other languages; names have no
    spaces. Variant listings carry the pseudo-language "variant", which is not a voice.
    """
    names: list[str] = []
    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:
            if fields[1] != "variant":
                names.append(fields[1])
            names.append(fields[4])
    return names
