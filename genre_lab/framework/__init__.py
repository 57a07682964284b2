"""Framework glue: Lightning callbacks, loggers and their checks, DDP ranks, the one place that touches private
APIs (compat), hardware detection and progress output."""
