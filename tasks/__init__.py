"""Prefect tasks and the pure logic under them (``tasks.core``).

Importing the package first sets the allocators' memory options (``tasks.memory``): polars reads
them when it loads, which is after this in every candleflow process.
"""

from tasks.memory import configure_allocators

configure_allocators()
