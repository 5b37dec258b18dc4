"""Sessions are set up for a small pod (no graph optimizations, no arena, no kept model bytes),
and that changes no answer."""

from __future__ import annotations

import platform
import sys

import numpy as np
import onnxruntime as ort

from bundle_builder.building import BuiltBundle
from model_runtime.bundle_state import fetch_verified
from model_runtime.memory import release_freed_heap
from model_runtime.sessions import load_sessions


def test_every_output_is_bit_identical_to_a_fully_optimized_onnxruntime_session(
    small_bundle: BuiltBundle,
) -> None:
    verified = fetch_verified(str(small_bundle.path))
    sessions = load_sessions(verified)
    # onnxruntime's defaults but one intra-op thread: with several, a tree ensemble sums its
    # trees in another order (last-bit differences), which is threading, not optimization.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    rng = np.random.default_rng(7)
    for name, ours in sessions.items():
        width = ours.input.shape[1]
        rows = rng.uniform(-50.0, 600.0, size=(1_000, width)).astype(np.float32)
        default = ort.InferenceSession(
            verified.model_bytes[name], options, providers=["CPUExecutionProvider"]
        )
        expected = default.run(list(ours.output_names), {ours.input_name: rows})
        for got, want in zip(ours.run(rows), expected, strict=True):
            np.testing.assert_array_equal(got, want, err_msg=f"model {name}")


def test_sessions_keep_no_reference_to_the_model_bytes(small_bundle: BuiltBundle) -> None:
    verified = fetch_verified(str(small_bundle.path))
    before = {name: sys.getrefcount(data) for name, data in verified.model_bytes.items()}
    sessions = load_sessions(verified)
    after = {name: sys.getrefcount(data) for name, data in verified.model_bytes.items()}
    assert len(sessions) == len(before)
    assert after == before


def test_freed_heap_is_handed_back_wherever_the_c_library_is_glibc() -> None:
    assert release_freed_heap() is (platform.libc_ver()[0] == "glibc")
