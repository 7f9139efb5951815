"""`init`: a new project from a table, and the curated schema."""
