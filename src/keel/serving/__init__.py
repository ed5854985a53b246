"""The prediction service: the FastAPI app factory (:mod:`keel.serving.app`) and its hot-path predictor."""
