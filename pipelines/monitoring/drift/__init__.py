"""Drift detection for deployed clinical models: captured inferences against the training-time baseline.

The flow: `sources` + `capture` read SageMaker data capture (local folder or S3) or a table into rows;
`summary` turns rows into mergeable counts over the baseline's bins (the only per-row work); `detect` compares
those counts with `baseline.json` (`baseline`, statistics in `stats`); `report` writes JSON and an
analyst-facing HTML page (`narrative` for the words, `plots` for the charts); `metrics` publishes CloudWatch
metrics; `shard` splits the work over SageMaker Processing instances; `cli` is `clinops drift`; `simulate`
and `demo` produce capture the way an endpoint would, for the demo and the tests.
"""
