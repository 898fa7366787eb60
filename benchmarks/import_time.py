"""Times a cold `import` of each light brainage_tf module in a fresh interpreter.

Run: python benchmarks/import_time.py [--repeats 5]
"""

import argparse
import subprocess
import sys
import time

MODULES = ["brainage_tf", "brainage_tf.preprocessing", "brainage_tf.synthetic", "brainage_tf.ingest"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'module':<28} {'best s':>7} {'median s':>9}")
    for module in MODULES:
        timings = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
            timings.append(time.perf_counter() - start)
        timings.sort()
        print(f"{module:<28} {timings[0]:>7.2f} {timings[len(timings) // 2]:>9.2f}")


if __name__ == "__main__":
    main()
