"""The core every stage stands on: config and presets, the data contract, the window rule, batches, metrics,
scoring, baselines and model arguments. It imports neither pyspark nor ray (checked by import-linter)."""
