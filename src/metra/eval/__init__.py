"""Evaluation: coverage, zero-shot goal reaching, plots and video of a trained run."""
