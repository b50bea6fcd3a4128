"""pipelinectl: operate data and event pipelines from one command tree."""

__version__ = "0.1.0"
