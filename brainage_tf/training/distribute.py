"""The tf.distribute strategy and this process's role in the cluster.

`worker_role_from_env` reads TF_CONFIG without importing TensorFlow, so the run
directory can be chosen before TensorFlow starts; `make_strategy` must then run
before any other TensorFlow op.
"""

from __future__ import annotations

import dataclasses
import json
import os

from brainage_tf.errors import UsageError


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process's place in a (possibly single-process) cluster.

    Attributes:
        is_chief: Whether this process writes the run's history, results and models.
        task_type: "chief" or "worker" from TF_CONFIG; None outside a cluster.
        task_id: Index of this task within its type.
        num_workers: Processes training together (1 outside a cluster).
    """

    is_chief: bool = True
    task_type: str | None = None
    task_id: int = 0
    num_workers: int = 1


def worker_role_from_env() -> WorkerRole:
    """Reads TF_CONFIG to find this worker's role.

    The chief is the task of type "chief", or worker 0 when the cluster has no chief.
    """
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster = tf_config.get("cluster", {})
    task = tf_config.get("task", {})
    num_workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    if num_workers <= 1 or not task:
        return WorkerRole()
    task_type, task_id = task.get("type"), int(task.get("index", 0))
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    return WorkerRole(is_chief, task_type, task_id, num_workers)


def split_cpu(num_devices: int) -> None:
    """Splits the host CPU into logical devices, so `mirrored` runs on a CPU-only host."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
    )


def make_strategy(name: str, role: WorkerRole):
    """Creates the tf.distribute strategy.

    Args:
        name: "auto" (multi_worker when TF_CONFIG names several workers, mirrored with
            several GPUs, else one_device), "one_device", "mirrored" (all GPUs, or all
            logical CPUs when there is no GPU) or "multi_worker" (needs TF_CONFIG).
        role: This process's cluster role.

    Returns:
        A tf.distribute.Strategy.

    Raises:
        UsageError: multi_worker without a cluster of at least 2 workers.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "multi_worker" if role.num_workers > 1 else ("mirrored" if len(gpus) > 1 else "one_device")
    if name == "multi_worker":
        if role.num_workers < 2:
            raise UsageError("--strategy multi_worker needs TF_CONFIG describing at least 2 workers.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        devices = None if gpus else [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
