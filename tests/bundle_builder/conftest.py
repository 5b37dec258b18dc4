"""Fitted models and samples shaped like a data scientist's notebook: small, so tests stay fast.

Estimators are fitted once per session; each test packs them into its own directory.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

FEATURES = ("intake_pressure", "motor_temp", "vibration", "pump_type")
ROWS = 300


@dataclass(frozen=True)
class Notebook:
    """What a data scientist arrives with: a sample with gaps and fitted estimators."""

    sample: pd.DataFrame
    models: dict[str, Any]


def sensor_frame(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "intake_pressure": rng.normal(50.0, 5.0, rows),
            "motor_temp": rng.normal(90.0, 10.0, rows),
            "vibration": rng.gamma(2.0, 0.5, rows),
            "pump_type": rng.integers(0, 3, rows).astype(float),
        }
    )
    frame.loc[::11, "motor_temp"] = np.nan  # gaps, as real sensor data has
    return frame


def column_transformer() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                ["intake_pressure", "motor_temp", "vibration"],
            ),
            ("pump", OneHotEncoder(handle_unknown="ignore"), ["pump_type"]),
        ]
    )


def fit_notebook(seed: int = 0) -> Notebook:
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    frame = sensor_frame(seed=seed)
    overheat = (frame["motor_temp"].fillna(90.0) + 3 * frame["vibration"] > 96).astype(int)
    wear = frame["intake_pressure"] * 0.3 + frame["vibration"] * 2.0
    models = {
        "motor-overheat": Pipeline(
            [
                ("pre", column_transformer()),
                ("model", RandomForestClassifier(n_estimators=8, max_depth=5, random_state=seed)),
            ]
        ).fit(frame, overheat),
        "gas-lock": Pipeline(
            [("pre", column_transformer()), ("model", LogisticRegression(max_iter=500))]
        ).fit(frame, overheat),
        "pump-wear": Pipeline(
            [
                ("pre", column_transformer()),
                ("model", GradientBoostingRegressor(n_estimators=10, random_state=seed)),
            ]
        ).fit(frame, wear),
    }
    return Notebook(sample=frame, models=models)


@pytest.fixture(scope="session")
def notebook() -> Notebook:
    return fit_notebook()


@pytest.fixture(scope="session")
def notebook_files(notebook: Notebook, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The notebook saved as a data scientist would: joblib files and a CSV sample."""
    import joblib

    folder = tmp_path_factory.mktemp("notebook")
    for name, model in notebook.models.items():
        joblib.dump(model, folder / f"{name}.joblib")
    notebook.sample.to_csv(folder / "holdout.csv", index=False)
    return folder


def run_bundle_command(*argv: str) -> int:
    """`modelfleet bundle ...` in-process (a subprocess would pay the imports again)."""
    from bundle_builder.cli import COMMAND

    parser = argparse.ArgumentParser()
    COMMAND.add_arguments(parser)
    return COMMAND.run(parser.parse_args(list(argv)))
