"""Statistics over repetitions: order statistics, intervals of medians (pure)."""
