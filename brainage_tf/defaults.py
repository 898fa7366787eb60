"""Choices and defaults that light and heavy modules share, each defined once.

This module imports nothing, so the command-line parsers, the ingest readers and
the synthetic generator can check a flag without importing TensorFlow or Keras.
Grid names and registration modes live beside their definitions in
`brainage_tf.preprocessing` (also TensorFlow-free), model names in
`brainage_tf.model_registry`; the test fraction and age-bin width of the
train/test split live in `brainage_tf.ingest.splits`.
"""

# Voxel axis of the RAS+ volume that each slicing steps along (x: L->R, y: P->A, z: I->S).
SLICE_AXIS_INDEX = {"sagittal": 0, "coronal": 1, "axial": 2}
SLICE_AXES = tuple(SLICE_AXIS_INDEX)
DEFAULT_SLICE_AXIS = "axial"
# He et al. resize every slice to 50 x 50 before the 2D ResNet18.
DEFAULT_SLICE_SIZE = (50, 50)
# The paper's pooling size was lost in extraction; 4 axial slices of the paper grid
# (1.5 mm) pool a 6 mm slab and turn 112 slices into 28 LSTM steps.
DEFAULT_POOL_SIZE = 4

# ResNet18 (He et al. 2016): stem filters, then four stages of two basic blocks. Here, not in
# brainage_tf.models.resnet, so the PyTorch twin in benchmarks/ builds the same layout without Keras.
STEM_FILTERS = 64
STAGE_FILTERS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
BLOCKS_PER_STAGE = 2
# Units of each direction of slice_lstm's bidirectional LSTM (the paper's 64).
LSTM_UNITS = 64

# The paper's discovery cohort spans 0-22 years; its second setting trains on 0-6 only.
MIN_AGE_YEARS = 0.0
MAX_AGE_YEARS = 22.0
# The replication cohort (MGHBCH) and the paper's second training setting span 0-6 years.
YOUNG_MAX_AGE_YEARS = 6.0

# Share of training subjects held out for model selection (0: none, as in the paper).
VALIDATION_FRACTION = 0.2
# Share of those validation subjects set aside to calibrate (bias correction, conformal intervals):
# they take no part in choosing the epoch, so the intervals' coverage guarantee holds on them.
CALIBRATION_FRACTION = 0.5

DEFAULT_DATASET = "synthetic_cohort/small"

# Ground truth a cohort may list beside its ages (the synthetic one does): the subject's developmental
# tempo and each scan's developmental age (= age x tempo). One name each as table column and TFDS feature;
# an example without them holds NaN (docs/evaluation.md, "Ground truth").
TEMPO_COLUMN = "tempo"
DEVELOPMENTAL_AGE_COLUMN = "developmental_age"
GROUND_TRUTH_COLUMNS = (TEMPO_COLUMN, DEVELOPMENTAL_AGE_COLUMN)

# File suffixes of the scans the package reads (nibabel's NIfTI, MINC, MGH and Analyze), lower
# case. Gzipped MINC (.mnc.gz) is not one: nibabel cannot open it.
SCAN_SUFFIXES = (".nii", ".nii.gz", ".mnc", ".mgz", ".mgh", ".img", ".hdr")

# The builders store each volume as float16 (half the disk and cache of float32); the
# model is trained and evaluated on, and predict feeds it, volumes rounded to it.
STORED_VOLUME_DTYPE = "float16"
