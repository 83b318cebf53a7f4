"""Presets, sweeps (YAML) and the job queue (SQLite locally, SLURM through submitit)."""
