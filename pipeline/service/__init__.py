"""The run service: checks, locking, one run's record and its history, the metadata store."""
