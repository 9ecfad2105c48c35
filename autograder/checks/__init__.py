"""The graded checks, as pytest tests: one file per category, each check with its points beside it."""
