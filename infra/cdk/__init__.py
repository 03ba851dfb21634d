"""candleflow's AWS infrastructure as CDK code, generated from ``infra/spec.py``.

``app.py`` is the CDK app (``cdk.json``); ``stack.py`` composes the modules, one per concern.
"""
