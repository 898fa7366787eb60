"""MGHBCH (replication cohort) TFDS builder."""
