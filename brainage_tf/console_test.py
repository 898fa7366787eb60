"""The commands' console keeps TensorFlow's native log lines off stderr, and nothing else."""

import subprocess
import sys
import textwrap

NATIVE_LINES = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796392612.690237   25285 port.cc:153] oneDNN custom operations are on.",
    "To enable the following instructions: AVX2 FMA, in other operations, "
    "rebuild TensorFlow with the appropriate compiler flags.",
    "E0000 00:00:1796392618.694958   25285 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)",
    "W1204 13:54:36.000001    7 onednn_util.cc:12] oneDNN supports DT_HALF only on platforms with AVX-512",
)
BEAM_WORKER_LINES = (
    "INFO:__main__:Logging handler created.",
    "WARNING:__main__:No semi_persistent_directory found:  User registered objects (e.g. schema)",
    "WARNING:apache_beam.options.pipeline_options:Discarding unparseable args: ['--direct_runner']",
)
KEPT_LINES = (
    "F1204 13:54:36.000001    7 tensor.cc:7] Check failed: a fatal line is never dropped",
    "a C library's own message",
    "I0000 is not a log line without its prefix",
)

COMMAND = """
import os, subprocess, sys
from brainage_tf.console import run_command

def main():
    for line in {lines!r}:
        os.write(2, line.encode() + b"\\n")  # as C code writes: to the descriptor
    print("from python", file=sys.stderr)
    subprocess.run([sys.executable, "-c", {child!r}], check=True)
    os.write(2, b"no newline at the end")
    return 3

sys.exit(run_command(main, {argv!r}))
"""


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def command(argv: list[str]) -> str:
    child = (
        f"import os; os.write(2, {(NATIVE_LINES[1] + chr(10) + 'child process line' + chr(10)).encode()!r})"
    )
    return textwrap.dedent(COMMAND).format(
        lines=NATIVE_LINES + BEAM_WORKER_LINES + KEPT_LINES, child=child, argv=argv
    )


def test_native_log_lines_are_dropped_and_every_other_line_kept_in_order():
    done = run_python(command([]))
    assert done.returncode == 3
    filtered = [*KEPT_LINES, "child process line", "no newline at the end"]
    lines = done.stderr.splitlines()
    # Python's own writes bypass the filter, so "from python" may come anywhere.
    assert sorted(lines) == sorted(["from python", *filtered])
    assert [line for line in lines if line != "from python"] == filtered


def test_verbose_shows_every_line():
    done = run_python(command(["--verbose"]))
    assert done.returncode == 3
    assert sorted(done.stderr.splitlines()) == sorted(
        [
            *NATIVE_LINES,
            *BEAM_WORKER_LINES,
            *KEPT_LINES,
            "from python",
            NATIVE_LINES[1],
            "child process line",
            "no newline at the end",
        ]
    )


def test_tensorflow_start_up_prints_nothing_through_a_command():
    start_tensorflow = "lambda: int(__import__('tensorflow').config.list_physical_devices('CPU') == [])"
    quiet = run_python(
        f"from brainage_tf.console import run_command; exit(run_command({start_tensorflow}, []))"
    )
    loud = run_python(f"exit(({start_tensorflow})())")
    assert quiet.returncode == loud.returncode == 0
    assert quiet.stderr == ""
    assert (
        "I0000" in loud.stderr
    )  # TensorFlow does print them, so the empty stderr above is the filter's doing


def test_library_notices_are_dropped_and_other_warnings_kept():
    code = """
import logging
from brainage_tf.console import run_command

def main():
    import apache_beam  # logs the apitools notice on a machine without Beam's GCP extra
    logging.warning("apitools not found, and bigquery client libraries are not available despite it")
    logging.getLogger("absl").warning("`FeatureConnector.dtype` is deprecated. Please change your code")
    logging.warning("a warning of this package's own")
    return 0

exit(run_command(main, []))
"""
    done = run_python(code)
    assert (done.returncode, done.stderr) == (0, "WARNING:root:a warning of this package's own\n")


def test_python_lines_and_filtered_lines_never_merge():
    # For half a second both write lines at once: Python's straight to stderr, the child's through the filter.
    code = """
import subprocess, sys, time
from brainage_tf.console import run_command

CHILD = "import os, time\\nend = time.time() + 0.5\\nwhile time.time() < end: os.write(2, b'child\\\\n')"

def main():
    child = subprocess.Popen([sys.executable, "-c", CHILD])
    end = time.time() + 1.0
    while time.time() < end:
        print("python", file=sys.stderr)
    return child.wait()

exit(run_command(main, []))
"""
    done = run_python(code)
    lines = done.stderr.splitlines()
    assert done.returncode == 0 and {"python", "child"} == set(lines), sorted(set(lines))[:5]
