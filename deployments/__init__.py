"""What prefect.yaml cannot hold: serving its deployments from a local process (``candleflow up``)."""
