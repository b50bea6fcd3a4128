"""pipelinectl driver for Celery (Redis broker and result backend): stages are queues and their workers."""

__version__ = "0.1.0"
