"""Services the CLI commands call: project-level operations that are not a node's run."""
