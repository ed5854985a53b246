"""Pure, deterministic logic: configuration-driven schemas, features, estimators, metrics and splits."""
