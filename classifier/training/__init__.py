"""Training (needs `taskrouter[train]`): the estimator and `train_cascade`, thresholds, the scope fit, out-of-source
folds, encoder tuning and evaluation."""
