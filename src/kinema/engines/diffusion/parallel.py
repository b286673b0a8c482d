"""One job across several devices: diffusers' context parallelism in one process per rank.

An engine whose catalog entry lists ``devices = ["cuda:0", "cuda:1", ...]`` (or a worker
started with ``kinema worker --gpus 0,1,...``) runs each job on all of them:

- The worker process owns the job as it owns every job: claim, progress, cancel, encode
  and finish. It loads no weights itself; it starts one process per device (the ranks),
  which join a ``torch.distributed`` group (NCCL on GPUs, gloo on the CPU) and each load
  the whole model straight onto their device. Every rank sees every GPU, in the order
  ``devices`` lists them, and takes its own by rank (NCCL then uses NVLink between them).
- Tokens are split evenly: the video tokens of one latent frame must divide by the number
  of devices (checked when the catalog loads), and the attention heads too.
- Each transformer gets ``enable_parallelism(ContextParallelConfig(ulysses_degree=N))``:
  the video tokens are split N ways along the sequence and attention runs Ulysses-style
  (all-to-all to split the heads instead, attention, all-to-all back), with the split plan
  diffusers defines for the Wan and LTX transformers. Every rank draws the same noise from
  the job's seed and runs the same steps; rank 0 decodes and sends the frames back, the
  others stop at the latents.
- Progress comes from rank 0. Cancel is decided by rank 0 and broadcast to the others
  before every transformer call and after every step, so all ranks stop at the same point
  and wait for the next job.
- A rank that dies, or fails while the others are left waiting on it, fails the job with
  an ``EngineError``; the group is torn down and started again for the next job. Every
  collective has a timeout (``_COLLECTIVE_TIMEOUT_S``), so a rank can never wait forever.

This module imports torch only inside the functions that run in the ranks.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import Connection, wait
from typing import Any

from kinema.errors import EngineError, JobCancelled
from kinema.types import CancelCheck, ProgressCallback

log = logging.getLogger(__name__)

_COLLECTIVE_TIMEOUT_S = 600.0  # longest a rank waits in one collective
_LOAD_TIMEOUT_S = 1800.0  # loading a model on every rank (A14B from a slow disk)
_GRACE_S = 15.0  # after one rank fails, how long the others get to report before teardown


@dataclass(frozen=True)
class RankSpec:
    """What a rank process needs to build its engine (picklable)."""

    engine_type: type
    options: dict[str, Any]
    name: str
    rank: int
    world: int
    port: int


@dataclass
class _Outcome:
    kind: str  # "done", "cancelled" or "failed"
    calls: int  # transformer calls the rank made for the job
    message: str = ""
    video: Any = None
    audio: Any = None


class RankGroup:
    """The rank processes of one engine, started on first use and after a failure."""

    def __init__(self, engine_type: type, options: dict[str, Any], name: str) -> None:
        self._engine_type = engine_type
        self._options = dict(options)
        self._devices = tuple(str(d) for d in options.get("devices", ()))
        self._name = name
        self._processes: list[Any] = []
        self._conns: list[Connection] = []
        self._cancel: Any = None
        self._jobs = itertools.count(1)
        self.starts = 0  # how many times the ranks were started
        self.last_calls: list[int] = []  # transformer calls per rank in the last job

    @property
    def world(self) -> int:
        return len(self._devices)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes]

    @property
    def alive(self) -> bool:
        return bool(self._processes) and all(p.is_alive() for p in self._processes)

    def start(self) -> None:
        """Start the ranks and wait until each has loaded the model (or one failed)."""
        if self.alive:
            return
        self.stop()
        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        port = _free_port()
        self._cancel = context.Event()
        for rank in range(self.world):
            parent, child = context.Pipe()
            spec = RankSpec(self._engine_type, self._options, self._name, rank, self.world, port)
            process = context.Process(
                target=rank_main,
                args=(spec, child, self._cancel),
                name=f"kinema-{self._name}-rank{rank}",
                daemon=True,
            )
            process.start()
            child.close()
            self._processes.append(process)
            self._conns.append(parent)
        self.starts += 1
        deadline = time.monotonic() + _LOAD_TIMEOUT_S
        for rank in range(self.world):
            message = self._receive(rank, deadline, "loading the model")
            if message[0] != "ready":
                self.stop()
                raise EngineError(f"engine {self._name}: rank {rank} failed to load: {message[1]}")
        log.info("engine %s: %d ranks ready on %s", self._name, self.world, self._devices)

    def stop(self) -> None:
        """End the rank processes (politely, then by force)."""
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("stop",))
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        for conn in self._conns:
            conn.close()
        self._processes, self._conns = [], []

    def run(
        self, plan: Any, on_progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> tuple[Any, Any]:
        """Make one clip on every rank; the frames and sound come from rank 0."""
        self.start()
        self._cancel.clear()
        job = next(self._jobs)
        for rank, conn in enumerate(self._conns):
            try:
                conn.send(("job", job, plan))
            except OSError:  # it died between jobs
                self._crash(rank)
        outcomes = self._collect(on_progress, is_cancelled)
        self.last_calls = [outcome.calls for outcome in outcomes]
        failed = [(rank, o) for rank, o in enumerate(outcomes) if o.kind == "failed"]
        if failed:
            rank, outcome = failed[0]
            raise EngineError(f"engine {self._name}: rank {rank}: {outcome.message}")
        if outcomes[0].kind == "cancelled":
            raise JobCancelled(outcomes[0].message)
        return outcomes[0].video, outcomes[0].audio

    def _collect(self, on_progress: ProgressCallback, is_cancelled: CancelCheck) -> list[_Outcome]:
        outcomes: dict[int, _Outcome] = {}
        first_failure: float | None = None
        by_conn = {id(conn): rank for rank, conn in enumerate(self._conns)}
        by_sentinel = {p.sentinel: rank for rank, p in enumerate(self._processes)}
        while len(outcomes) < self.world:
            if not self._cancel.is_set() and is_cancelled():
                self._cancel.set()
            waiting = [c for r, c in enumerate(self._conns) if r not in outcomes]
            ready = wait([*waiting, *by_sentinel], timeout=0.1)
            for item in ready:
                if isinstance(item, int):
                    if by_sentinel[item] not in outcomes:
                        self._crash(by_sentinel[item])
                    continue
                assert isinstance(item, Connection)
                rank = by_conn[id(item)]
                try:
                    message = item.recv()
                except (EOFError, OSError):
                    self._crash(rank)
                if message[0] == "progress":
                    on_progress(message[1])
                else:
                    outcomes[rank] = _Outcome(*message)
                    if message[0] == "failed" and first_failure is None:
                        first_failure = time.monotonic()
            if first_failure is not None and time.monotonic() - first_failure > _GRACE_S:
                rank, outcome = next((r, o) for r, o in outcomes.items() if o.kind == "failed")
                self.stop()  # the others are stuck waiting for the failed rank
                raise EngineError(
                    f"engine {self._name}: rank {rank}: {outcome.message} (the other ranks "
                    "were stopped and start again for the next job)"
                )
        return [outcomes[rank] for rank in range(self.world)]

    def _crash(self, rank: int) -> None:
        self._processes[rank].join(timeout=5)  # reap it, for its exit code
        code = self._processes[rank].exitcode
        self.stop()
        raise EngineError(
            f"engine {self._name}: rank {rank} ({self._devices[rank]}) exited with code {code} "
            "while making the clip; the job failed and the ranks start again for the next job"
        )

    def _receive(self, rank: int, deadline: float, doing: str) -> tuple[Any, ...]:
        conn, process = self._conns[rank], self._processes[rank]
        while time.monotonic() < deadline:
            ready = wait([conn, process.sentinel], timeout=0.5)
            if conn in ready:
                try:
                    message: tuple[Any, ...] = conn.recv()
                    return message
                except (EOFError, OSError):
                    pass
            if process.sentinel in ready or not process.is_alive():
                return ("error", f"exited with code {process.exitcode} while {doing}")
        return ("error", f"no answer while {doing}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- inside a rank process ----------------------------------------------------------------


def rank_main(spec: RankSpec, conn: Connection, cancel: Any) -> None:
    """A rank: join the group, load the model, then run the jobs it is sent until told to
    stop (or until the worker's end of the pipe closes)."""
    device = rank_device([str(d) for d in spec.options["devices"]], spec.rank)
    import torch
    import torch.distributed as dist

    gpu = device.startswith("cuda")
    if gpu:
        torch.cuda.set_device(torch.device(device))
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // spec.world))
    try:
        dist.init_process_group(
            "nccl" if gpu else "gloo",
            init_method=f"tcp://127.0.0.1:{spec.port}",
            rank=spec.rank,
            world_size=spec.world,
            timeout=timedelta(seconds=_COLLECTIVE_TIMEOUT_S),
        )
        options = {k: v for k, v in spec.options.items() if k != "devices"}
        name = f"{spec.name}.rank{spec.rank}"
        engine = spec.engine_type(
            {**options, "device": device}, name=name, context_parallel=spec.world
        )
        engine.setup()
    except Exception as error:
        conn.send(("error", f"{type(error).__name__}: {error}"))
        return
    conn.send(("ready",))
    try:
        _serve(engine, spec, conn, cancel, torch.device(device))
    finally:
        dist.destroy_process_group()


def rank_device(devices: list[str], rank: int) -> str:
    """The device of ``rank``: its entry in the list every rank sees in the same order.

    Every GPU stays visible to every rank (no ``CUDA_VISIBLE_DEVICES`` per rank): NCCL
    needs to see its peers to use NVLink and peer-to-peer copies; with one visible GPU
    per process it falls back to copies through host memory. "cuda" alone means GPU
    ``rank``."""
    device = devices[rank]
    if device == "cuda":
        return f"cuda:{rank}"
    return device


def _serve(engine: Any, spec: RankSpec, conn: Connection, cancel: Any, device: Any) -> None:
    import torch
    import torch.distributed as dist

    flag = torch.zeros(1, dtype=torch.int32, device=device)

    def is_cancelled() -> bool:
        # Called at the same points on every rank; rank 0's answer is everyone's.
        flag.fill_(int(spec.rank == 0 and cancel.is_set()))
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def on_progress(fraction: float) -> None:
        if spec.rank == 0:
            conn.send(("progress", fraction))

    calls = [0]

    def count(*_: Any) -> None:
        calls[0] += 1

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] != "job":
            return
        plan = message[2]
        calls[0] = 0
        pipe = engine.pipeline
        target = pipe if plan.image is not None else engine.text_target(pipe)
        hooks = [t.register_forward_pre_hook(count) for t in _transformers(target)]
        try:
            video, audio = engine.generate(
                pipe,
                plan,
                on_progress,
                is_cancelled,
                decode=spec.rank == 0,
                is_cancelled_while_decoding=cancel.is_set,
            )
            conn.send(("done", calls[0], "", video, audio))
        except JobCancelled as error:
            conn.send(("cancelled", calls[0], error.message))
        except Exception as error:
            conn.send(("failed", calls[0], f"{type(error).__name__}: {error}"))
        finally:
            for hook in hooks:
                hook.remove()


def _transformers(pipe: Any) -> list[Any]:
    return [t for name in ("transformer", "transformer_2") if (t := getattr(pipe, name, None))]


# --- diffusers' context parallelism ---------------------------------------------------------


def enable_context_parallel(pipe: Any, world: int, engine: str) -> None:
    """Split each transformer's sequence ``world`` ways (Ulysses) across the group."""
    import torch
    from diffusers import ContextParallelConfig

    for transformer in _transformers(pipe):
        if getattr(transformer, "_cp_plan", None) is None:
            raise EngineError(
                f"engine {engine}: {type(transformer).__name__} has no context-parallel plan "
                "in this diffusers; run it on one device"
            )
        if type(transformer).__name__.startswith("LTX"):
            raise EngineError(
                f"engine {engine}: diffusers' context-parallel plan for "
                f"{type(transformer).__name__} splits the video tokens but not the per-token "
                "timesteps its image-to-video pipelines pass; run it on one GPU per job"
            )
        heads = transformer.config.get("num_attention_heads")
        if heads and heads % world:
            raise EngineError(
                f"engine {engine}: {heads} attention heads do not split across {world} devices"
            )
        _resolve_on(transformer, torch.device(pipe.device))
        transformer.enable_parallelism(config=ContextParallelConfig(ulysses_degree=world))


def _resolve_on(transformer: Any, device: Any) -> None:
    """diffusers 0.42 maps a rank to ``rank % torch.accelerator.device_count()``: the wrong
    GPU when a group runs on cuda:2 and cuda:3, and 0 on a CPU. The config is set up on the
    rank's own device instead, over a mesh of that device type (NCCL or gloo)."""
    import types

    import torch
    from diffusers.models._modeling_parallel import ContextParallelConfig, ParallelConfig

    def resolve(self: Any, config: Any) -> Any:
        if isinstance(config, ContextParallelConfig):
            config = ParallelConfig(context_parallel_config=config)
        cp = config.context_parallel_config
        mesh = torch.distributed.device_mesh.init_device_mesh(
            device.type, mesh_shape=cp.mesh_shape, mesh_dim_names=cp.mesh_dim_names
        )
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        config.setup(rank, world, device, mesh=mesh)
        self._parallel_config = config
        return config

    resolved: Callable[..., Any] = types.MethodType(resolve, transformer)
    transformer._resolve_parallel_config = resolved
