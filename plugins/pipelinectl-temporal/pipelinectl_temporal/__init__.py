"""pipelinectl driver for Temporal (entry point `pipelinectl.drivers: temporal`)."""

__version__ = "0.1.0"
