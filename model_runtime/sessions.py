"""One onnxruntime session per model, configured for tiny models and many of them.

Per-well models are a few kilobytes of trees: a single-row run takes microseconds, so thread
pools cost more than they give. Measured on the 2-core reference machine (bench notes in
docs/benchmarks.md): intra=1/inter=1 with sequential execution is the fastest per call and
keeps 100 sessions from spawning 200 threads; creation of 100 sessions stays well under 2 s.
Memory per session matters as much (a pod per well): no graph optimizations, onnxruntime's CPU
arena and memory pattern off, and the serialized model not kept once the session holds it; the
outputs are the same (docs/benchmarks.md, Runtime, memory).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from model_runtime.errors import BundleInvalidError
from model_runtime.manifest import ModelEntry, TensorSpec
from model_runtime.verification import VerifiedBundle

_NUMPY_DTYPES: dict[str, Any] = {
    "FP32": np.float32,
    "FP64": np.float64,
    "INT64": np.int64,
    "INT32": np.int32,
    "BOOL": np.bool_,
}


def session_options() -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # The extended and layout levels fuse neural-network patterns (attention, GELU, NCHWc
    # convolutions) that scikit-learn's ONNX graphs do not hold; the basic level removes an
    # Identity node after some tree ensembles and folds constants, exact rewrites that change no
    # output. Each level's optimizers cost memory in every session (basic: ~12 KiB a session)
    # for no latency we could measure on these graphs (docs/benchmarks.md, Runtime, memory).
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # The arena keeps what a run allocated for the next one: ~4 MiB once 100 models have scored,
    # for no latency we could measure on tree ensembles (docs/benchmarks.md, Runtime).
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    # Spinning worker threads would burn a core per session for nothing on tiny models.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


@dataclass(frozen=True)
class ModelSession:
    """A loaded model: its manifest entry and the onnxruntime session that scores it."""

    entry: ModelEntry
    session: Any  # onnxruntime.InferenceSession
    output_names: tuple[str, ...]
    input_name: str = field(init=False)
    # What scores: onnxruntime's binding under the Python wrapper when there is one. The wrapper
    # re-checks on every run what load_sessions checked once against the graph (input names,
    # WebGPU graph capture, OrtValue ownership, EP fallback: CPU only here), a fifth of a
    # 100-model well request's time; the binding takes the same (names, feed, run options).
    _run: Callable[[list[str], dict[str, Any], Any], list[Any]] = field(init=False, repr=False)
    _output_list: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_name", self.entry.inputs[0].name)
        object.__setattr__(self, "_run", getattr(self.session, "_sess", self.session).run)
        object.__setattr__(self, "_output_list", list(self.output_names))

    @property
    def input(self) -> TensorSpec:
        return self.entry.inputs[0]

    def run(
        self, rows: npt.NDArray[Any], outputs: tuple[str, ...] | None = None
    ) -> list[npt.NDArray[Any]]:
        # The binding copies the names it is handed; it never changes the list.
        names = self._output_list
        if outputs and outputs is not self.output_names:
            names = list(outputs)
        return [np.asarray(o) for o in self._run(names, {self.input_name: rows}, None)]


def numpy_dtype(datatype: str) -> Any:
    return _NUMPY_DTYPES[datatype]


def load_sessions(bundle: VerifiedBundle) -> dict[str, ModelSession]:
    """Create every session; a model onnxruntime cannot load makes the whole bundle invalid."""
    import onnxruntime as ort

    options = session_options()
    sessions: dict[str, ModelSession] = {}
    for entry in bundle.manifest.models:
        try:
            session = ort.InferenceSession(
                bundle.model_bytes[entry.name], options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped family
            first_line = (
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            )
            raise BundleInvalidError(
                f"model {entry.name!r}: onnxruntime cannot load {entry.file}: {first_line}"
            ) from exc
        _check_signature(entry, session)
        _release_model_bytes(session)
        sessions[entry.name] = ModelSession(
            entry=entry, session=session, output_names=tuple(o.name for o in entry.outputs)
        )
    return sessions


def _release_model_bytes(session: Any) -> None:
    """Drop the wrapper's reference to the serialized model (~1.6 MiB for 100 models).

    onnxruntime's Python wrapper keeps the bytes a session was made from only to rebuild it for
    an execution-provider fallback, which a CPU-only session never takes; the session itself
    has its own copy of the graph.
    """
    if getattr(session, "_model_bytes", None) is not None:
        session._model_bytes = None


def _check_signature(entry: ModelEntry, session: Any) -> None:
    """The manifest's tensor names must be the ones the ONNX graph really has."""
    actual_inputs = [i.name for i in session.get_inputs()]
    actual_outputs = {o.name for o in session.get_outputs()}
    declared_inputs = [i.name for i in entry.inputs]
    if actual_inputs != declared_inputs:
        raise BundleInvalidError(
            f"model {entry.name!r}: manifest declares inputs {declared_inputs}, the ONNX graph has {actual_inputs}"
        )
    missing = [o.name for o in entry.outputs if o.name not in actual_outputs]
    if missing:
        raise BundleInvalidError(
            f"model {entry.name!r}: outputs {missing} declared in the manifest are not in the ONNX graph"
        )
    if any(i.datatype not in _NUMPY_DTYPES for i in entry.inputs):
        raise BundleInvalidError(f"model {entry.name!r}: only numeric/bool inputs are supported")
