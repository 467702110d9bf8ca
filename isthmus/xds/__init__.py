"""Translation stage: model -> Envoy resources per proxy (pure), and the ADS server that serves them.

May import isthmus.model only.
"""
