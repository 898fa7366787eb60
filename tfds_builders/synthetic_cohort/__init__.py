"""Embedded synthetic developmental cohort TFDS builder."""
