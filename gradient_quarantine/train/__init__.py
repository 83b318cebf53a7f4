"""GRPO training on TRL with route2b as one narrow extension, deploy evaluation, run directories."""
