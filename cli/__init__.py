"""The ``candleflow`` command: one subcommand per step of the pipeline, each runnable on its own."""
