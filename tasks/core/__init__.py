"""Pure core: data in, data out. No boto3, no prefect, no clock, no environment, no network."""
