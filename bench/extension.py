"""What an extension and extra samples cost over a plain clip, with the motion engine.

Jobs run in this process through the real executor (as a worker runs them), on the
shipped catalog's ``veo-3.1-fast-generate-preview`` at 720p, 24 fps:

- a plain 8 s clip;
- the same request with ``sample_count`` 4 (four clips, four seeds);
- a 7 s extension of the plain clip, what one Veo 3.1 call adds (the source is decoded,
  its planes are passed to the encoder untouched, and 7 new seconds follow: a 15 s MP4).

The rounds alternate, so a busy machine slows each alike; medians are reported.

    python bench/extension.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kinema.jobs.execute import Executor, RunControl
from kinema.runtime import Runtime
from kinema.settings import Settings
from kinema.types import Job, output_ref
from kinema.views import Creation

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "kinema" / "assets" / "sample.jpg"
MODEL = "veo-3.1-fast-generate-preview"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime.build(
            Settings(data_dir=Path(tmp), signing_secret="bench"), workers=0
        )
        executor = Executor(runtime.store, runtime.storage, runtime.catalog, runtime.engines)
        image = "data:image/jpeg;base64," + base64.b64encode(SAMPLE.read_bytes()).decode()

        def run(fields: dict[str, object]) -> tuple[float, Job]:
            runtime.service.create("bench", "gemini", Creation(model=MODEL, fields=fields))
            job = runtime.store.claim_next(worker_id="bench", lease_s=600)
            assert job is not None
            started = time.perf_counter()
            executor.execute(job, RunControl())
            elapsed = time.perf_counter() - started
            done = runtime.store.get_any(job.id)
            assert done.outputs, done.error_message
            return elapsed, done

        plain_fields = {"prompt": "pan left over the lake", "image": image, "duration": 8}
        _, source = run(plain_fields)  # warm up: espeak, x264, the engine
        cases: dict[str, Callable[[], tuple[float, Job]]] = {
            "plain 8 s": lambda: run(plain_fields),
            "4 samples of 8 s": lambda: run({**plain_fields, "sample_count": 4}),
            "8 s source + 7 s extension": lambda: run(
                {"prompt": "", "video": output_ref(source.id), "duration": 7}
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, case in cases.items():
                times[name].append(case()[0])
        runtime.close()
    print(f"{platform.processor() or platform.machine()}, {args.rounds} rounds, median s")
    base = statistics.median(times["plain 8 s"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} s | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
