"""benchmarks/_sections.py: each benchmark script replaces only its own BENCHMARKS.md section."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SOURCE = Path(__file__).resolve().parents[3] / "benchmarks" / "_sections.py"


@pytest.fixture(scope="module")
def sections() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_bench_sections", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_update_keeps_the_other_sections_byte_for_byte(
    sections: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "BENCHMARKS.md"
    sections.update_section(path, "groups", "## Consumer groups\n\nG1", machine=["Machine: m"])
    sections.update_section(path, "throughput", "## Throughput\n\nT1")
    sections.update_section(path, "scale", "## Scale\n\nS1")
    before = path.read_text()
    sections.update_section(path, "throughput", "## Throughput\n\nT2\n\nmore")
    after = path.read_text()

    assert sections.sections(after) == ["machine", "throughput", "groups", "scale"]
    assert sections.section_body(after, "throughput") == "## Throughput\n\nT2\n\nmore\n"
    for name in ("machine", "groups", "scale"):
        assert sections.section_body(after, name) == sections.section_body(before, name)
    assert after.replace("T2\n\nmore", "T1") == before


def test_legacy_file_is_wrapped_without_losing_text(sections: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    legacy = (
        "# Benchmarks\n\nThroughput intro.\n\n## Results\n\n| a |\n\n"
        "## Consumer groups\n\nFirst record in 1 s.\n\n### Detail\n\nd\n\n## Method\n\nm\n"
    )
    path.write_text(legacy)
    sections.update_section(path, "latency", "## Latency\n\nL", machine=["Machine: m"])
    text = path.read_text()

    assert sections.sections(text) == ["machine", "throughput", "latency", "groups"]
    groups = sections.section_body(text, "groups")
    assert groups == "## Consumer groups\n\nFirst record in 1 s.\n\n### Detail\n\nd\n"
    throughput = sections.section_body(text, "throughput")
    for kept in ("Throughput intro.", "## Results", "| a |", "## Method", "m\n"):
        assert kept in throughput


def test_unbalanced_markers_are_refused(sections: ModuleType) -> None:
    with pytest.raises(ValueError, match="no end marker"):
        sections.replace_section("<!-- begin:a -->\nx\n", "b", "y")


def test_each_section_keeps_the_machine_it_was_measured_on(
    sections: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "BENCHMARKS.md"
    # A header from before sections had machines of their own holds for all of them.
    path.write_text(
        "# Benchmarks\n\nintro\n\n<!-- begin:machine -->\n- Machine: old box\n- Python 3\n"
        "<!-- end:machine -->\n<!-- begin:throughput -->\n## Throughput\n<!-- end:throughput -->\n"
        "<!-- begin:scale -->\n## Scale\n<!-- end:scale -->\n"
    )
    sections.update_section(path, "scale", "## Scale\n\nS2", machine=["Machine: new box", "Py"])
    text = path.read_text()
    assert sections.machines(text) == {"throughput": "old box; Python 3", "scale": "new box; Py"}
    sections.update_section(path, "latency", "## Latency", machine=["Machine: new box", "Py"])
    text = path.read_text()
    assert sections.machines(text) == {
        "throughput": "old box; Python 3",
        "latency": "new box; Py",
        "scale": "new box; Py",
    }
    assert "- latency, scale: new box; Py\n" in text
    assert "- throughput: old box; Python 3\n" in text
