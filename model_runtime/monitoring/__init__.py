"""Functional monitoring: does each model of the well still see the data it was trained on?

Live rows and predictions are counted into the bundle's own reference bins (never re-binned),
over a sliding window per model, and compared with the reference: missing rate, rate outside
the reference range, and the population stability index (PSI). Pure numpy here (bins, window,
PSI, thresholds, report); `collector` is the one module that speaks Prometheus. Names and wire
shapes are the runtime contract's (`runtime_contract.monitoring`).
"""
