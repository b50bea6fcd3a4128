"""The command tree: one module per command group, imported only when it runs."""
