"""The Kaggle-facing stage: the client, the competition's download, the submission and its linter, and runs on Kaggle's
GPUs."""
