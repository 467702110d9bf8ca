"""The sidecar agent: obtains the pod's identity, renders Envoy's bootstrap, runs and supervises Envoy.

Sits above xds and identity (it uses the identity client and the data-plane
constants) and below the platforms that start it. It runs inside each pod,
so it stays light: no gRPC, no asyncio.
"""
