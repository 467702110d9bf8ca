"""The sidecar agent: renders Envoy's bootstrap, starts and supervises Envoy inside a pod.

May import isthmus.model only; it runs inside each pod, so it stays light.
"""
