"""Post-training workbench: make checkpoints (registry, data, training) and load them (engine)."""
