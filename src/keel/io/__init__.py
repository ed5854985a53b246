"""Side effects: data sources and files, the model registry, artifacts and plots."""
