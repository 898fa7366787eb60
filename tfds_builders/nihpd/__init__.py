"""NIH-PD (discovery cohort) TFDS builder."""
