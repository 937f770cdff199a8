"""Everything that judges checkpoints: the arena store, statistics, metrics and plots."""
