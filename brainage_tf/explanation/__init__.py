"""Explanations of predicted brain ages: voxel saliency, slab occlusion, montages, group maps.

* `saliency`: SmoothGrad or integrated gradients of the predicted age with respect
  to the preprocessed volume, from a Keras model or an export's `serving_default`.
* `occlusion`: the change in predicted age when each pooled slab of slices is
  replaced by its mean.
* `montage`: PNG figures of a map over its scan, and of group maps side by side.
* `group_maps`: mean normalised saliency per age group of an evaluated split.
* `sanity`: the checks of Adebayo et al. (2018) that a map depends on the model.

The CLI is `python -m brainage_tf.explain`; see docs/explain.md. Submodules import
TensorFlow or matplotlib, so this package imports none of them itself.
"""
