"""The in-memory :class:`~clearlane.node.ports.SilenceStore` (tests, a memory-backed node)."""

from __future__ import annotations

from dataclasses import dataclass, field

from clearlane.core.cases.silences import Silence


@dataclass
class MemorySilenceStore:
    _silences: dict[str, Silence] = field(default_factory=dict)

    def save_silence(self, silence: Silence) -> None:
        self._silences[silence.silence_id] = silence

    def silence(self, silence_id: str) -> Silence | None:
        return self._silences.get(silence_id)

    def silences(self) -> list[Silence]:
        return sorted(self._silences.values(), key=lambda s: (s.created_at_ms, s.silence_id))


__all__ = ["MemorySilenceStore"]
