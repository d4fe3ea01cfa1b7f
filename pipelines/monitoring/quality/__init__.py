"""Model quality with delayed labels: adjudicated outcomes joined to captured inferences, rolling-window
discrimination and calibration (overall and per subgroup), a decay verdict against the model's evaluation,
CloudWatch metrics and alarms. `cli` is `clinops quality`: the periodic backtest the runbook asks for."""
