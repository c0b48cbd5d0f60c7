"""How many repetitions a CELL gets, in which BATCHes and ROUNDs, and in which order (the policy, pure).

Adaptive repetitions are done by the orchestrator, not the runners: a CELL's container runs
in batches (each batch loads the model, runs the warm-up, then its timed repetitions), and
the batches' repetitions merge into one CELL record (batchmerge.py). So every ENGINE gets it
without changing its runner; rounds.py runs the batches.

- ``repetitions: N`` — N timed repetitions per CELL, split over the rounds.
- ``repetitions: {min, max, cv_target}`` — min repetitions split over the rounds; then
  top-up passes, each giving every CELL whose decode-rate CV is still above cv_target one
  more batch of ceil(min / rounds) repetitions (never beyond max), until no CELL needs one.
- ``rounds: R`` — the PLAN runs R times, each round in its own shuffled order (Python's
  ``random.Random(f"{seed}/{round}")``); top-up pass p is shuffled as round R + p.
  With one round and no seed in the MATRIX the PLAN order is kept.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from orchestrator.stats import certainty


@dataclass(frozen=True)
class Sampling:
    """The repetition and order policy of a RUN."""

    min: int
    max: int
    cv_target: float | None
    rounds: int
    seed: int
    shuffle: bool

    @classmethod
    def from_matrix(cls, matrix, seed: int) -> Sampling:
        """The policy of a MATRIX, with the RUN's seed (the MATRIX's own, else one drawn for the RUN)."""
        low = matrix.repetitions_min if matrix.repetitions_min is not None else matrix.repetitions
        return cls(low, matrix.repetitions, matrix.cv_target, matrix.rounds, seed,
                   matrix.rounds > 1 or matrix.seed is not None)

    def round_sizes(self) -> tuple[int, ...]:
        """Repetitions of each round's batch: min split as evenly as possible, at least 1 each."""
        base, extra = divmod(self.min, self.rounds)
        return tuple(max(1, base + (1 if r < extra else 0)) for r in range(self.rounds))

    def top_up_size(self, done: int) -> int:
        """Repetitions of the next top-up batch of a CELL that has ``done`` so far."""
        return max(0, min(math.ceil(self.min / self.rounds), self.max - done))

    def wants_more(self, gen_tps: list[float]) -> bool:
        """Whether a CELL with these decode rates gets another batch."""
        return (self.cv_target is not None and len(gen_tps) < self.max
                and not certainty.reached(gen_tps, self.cv_target))

    def order(self, cell_ids: list[str], round_number: int) -> list[str]:
        """The CELLs of a round (or top-up pass) in their seeded, shuffled order."""
        ordered = list(cell_ids)
        if self.shuffle:
            random.Random(f"{self.seed}/{round_number}").shuffle(ordered)
        return ordered

    def to_json(self) -> dict:
        return {"min": self.min, "max": self.max, "cv_target": self.cv_target, "rounds": self.rounds,
                "seed": self.seed, "shuffled": self.shuffle}
